// ConfigFuzz: config.json, read as the model loader reads it, and the sizes derived from an accepted
// config (what the engine computes before allocating anything: the memory estimate checked against the
// budget must saturate, never wrap). `parameterCount` is left out: nothing in the daemon calls it, and it
// still multiplies without a check (a config of three 2^24 sizes traps there; see fuzz/README.md).
//
//   config:  config.json
import Foundation
import OPTEngine

enum ConfigFuzz {
    static func run(_ input: FuzzInput) {
        let dir = ScratchDirectory.reset([("config.json", input.bytes)])
        guard let config = attempt("OPTConfig.load", { try OPTConfig.load(directory: dir) }) else { return }
        precondition(
            config.numAttentionHeads > 0 && config.headDim * config.numAttentionHeads == config.hiddenSize,
            "accepted config: hidden_size not split evenly across heads")
        let estimates = [
            SlotSession.estimatedBytes(config: config, slots: 1, capacity: config.maxPositionEmbeddings),
            BatchSession.estimatedBytes(config: config, batch: 64, capacity: 1 << 20),
        ]
        for bytes in estimates {
            precondition(bytes > 0, "memory estimate \(bytes) for an accepted config")
            _ = attempt("MemoryBudget.check", { try MemoryBudget(bytes: 1 << 30).check(bytes, for: "fuzzed config") })
        }
        _ = config.hasProjections
        _ = config.hasFinalLayerNorm
        // The decoder also reads a config from memory (the same Decodable).
        _ = attempt("JSONDecoder", { try JSONDecoder().decode(OPTConfig.self, from: Data(input.bytes)) })
    }
}
