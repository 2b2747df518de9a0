// AdapterFuzz: a peft adapter directory loaded for one of the fixture models' shapes (pre-LN 16-wide
// or post-LN 24-wide with an 8-wide projection, 2 layers each — the shapes the fixture adapters were
// trained for), the way generate and evaluate jobs load one, under a 256 MiB memory budget.
//
//   adapter:  selector (bit 0: .bin instead of .safetensors; bit 1: post-LN model)
//             adapter_config.json SEP adapter weights
import Foundation
import LoRAOps
import OPTEngine

enum AdapterFuzz {
    static let preLN = OPTConfig(
        vocabSize: 50272, hiddenSize: 16, ffnDim: 64, numHiddenLayers: 2,
        numAttentionHeads: 4, maxPositionEmbeddings: 64)
    static let postLN = OPTConfig(
        vocabSize: 50272, hiddenSize: 24, ffnDim: 48, numHiddenLayers: 2,
        numAttentionHeads: 4, maxPositionEmbeddings: 64, wordEmbedProjDim: 8,
        doLayerNormBefore: false)

    /// The budget adapters load under here, as the daemon's MUWA_MEMORY_LIMIT would bound them; an
    /// adapter within it still stays under the fuzzer's allocation limit (scripts/fuzz.sh: 512 MiB).
    static let budget = MemoryBudget(bytes: 256 << 20)

    static func run(_ input: FuzzInput) {
        let (selector, rest) = input.selectorAndRest
        let parts = FuzzInput.split(rest)
        let model = selector & 2 == 0 ? preLN : postLN
        let weightsName = selector & 1 == 0 ? "adapter_model.safetensors" : "adapter_model.bin"
        let dir = ScratchDirectory.reset([("adapter_config.json", parts[0]), (weightsName, parts[part: 1])])

        if let config = attempt(
            "AdapterConfig.parse", { try AdapterConfig.parse(Data(parts[0]), path: "adapter_config.json") })
        {
            if let targets = attempt("config.targets", { try config.targets(for: model) }) {
                for target in targets {
                    precondition(
                        target.layer >= 0 && target.layer < model.numHiddenLayers,
                        "adapter target in layer \(target.layer) of a \(model.numHiddenLayers)-layer model")
                    precondition(target.r > 0, "adapter target with rank \(target.r)")
                }
            }
            _ = attempt("config.jsonData", { try config.jsonData() })
        }
        _ = attempt("LoRAAdapter.load", { try LoRAAdapter.load(directory: dir, model: model, memoryBudget: budget) })
    }
}
