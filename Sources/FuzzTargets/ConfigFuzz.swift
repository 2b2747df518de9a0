// ConfigFuzz: config.json, read as the model loader reads it, and the sizes derived from an accepted
// config (what the engine computes before allocating anything).
//
//   config:  config.json
import Foundation
import OPTEngine

enum ConfigFuzz {
    static func run(_ input: FuzzInput) {
        let dir = ScratchDirectory.reset([("config.json", input.bytes)])
        guard let config = attempt("OPTConfig.load", { try OPTConfig.load(directory: dir) }) else { return }
        precondition(config.numAttentionHeads > 0 && config.headDim * config.numAttentionHeads == config.hiddenSize,
                     "accepted config: hidden_size not split evenly across heads")
        _ = config.parameterCount
        _ = config.hasProjections
        _ = config.hasFinalLayerNorm
        // The decoder also reads a config from memory (the same Decodable).
        _ = attempt("JSONDecoder", { try JSONDecoder().decode(OPTConfig.self, from: Data(input.bytes)) })
    }
}
