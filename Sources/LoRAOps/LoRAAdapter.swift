// LoRAAdapter: one adapter in memory — its config, its A/B matrices in one arena, and (for peft's
// bias "lora_only"/"all") the biases it replaces. It holds no base weights: any number of adapters
// can sit over one OPTModel (see AdapterSet) or be folded into a copy of the adapted matrices only
// (see merge(into:)).
import OPTEngine

/// A projection of the model: layer and module.
public struct ProjectionSite: Hashable, Sendable {
    public var layer: Int
    public var module: ProjectionModule
    public init(layer: Int, module: ProjectionModule) {
        self.layer = layer
        self.module = module
    }
}

/// Biases an adapter replaces (peft's bias "lora_only" / "all"); empty for bias "none".
public struct AdapterBiases: Sendable, Equatable {
    /// New bias (N) of a projection.
    public var projections: [ProjectionSite: [Float]] = [:]
    /// New bias (C) of a layer norm, by transformers' name without the `model.decoder.` prefix:
    /// `layers.N.self_attn_layer_norm`, `layers.N.final_layer_norm`, `final_layer_norm`.
    public var layerNorms: [String: [Float]] = [:]
    public var isEmpty: Bool { projections.isEmpty && layerNorms.isEmpty }
    public init() {}
}

public final class LoRAAdapter: @unchecked Sendable {
    public let config: AdapterConfig
    public let layout: LoRALayout
    /// A and B of every slot (see ``LoRALayout``).
    public let weights: FloatArena
    public let biases: AdapterBiases
    /// The shape of the model the adapter was made for (hidden size, ffn, layers).
    public let modelConfig: OPTConfig
    /// The directory it was loaded from, if any.
    public let source: String?

    public init(
        config: AdapterConfig, layout: LoRALayout, weights: FloatArena, biases: AdapterBiases = AdapterBiases(),
        modelConfig: OPTConfig, source: String? = nil
    ) {
        precondition(weights.count == layout.count, "weights do not fit the layout")
        self.config = config
        self.layout = layout
        self.weights = weights
        self.biases = biases
        self.modelConfig = modelConfig
        self.source = source
    }

    /// A fresh adapter initialised as peft does (init_lora_weights=True): A Kaiming-uniform with
    /// a = √5, i.e. U(−1/√K, 1/√K), B zero. The stream comes from `seed` (not torch's generator).
    public static func initialized(config: AdapterConfig, model: OPTConfig, seed: UInt64) throws -> LoRAAdapter {
        let layout = LoRALayout(targets: try config.targets(for: model), model: model)
        let weights = FloatArena(count: layout.count)
        var rng = SeededRNG(seed: seed)
        for slot in layout.slots {
            let bound = 1 / Double(slot.inFeatures).squareRoot()
            let a = weights.a(slot)
            for i in 0..<slot.aCount { a[i] = Float((2 * rng.nextUnit() - 1) * bound) }
        }
        return LoRAAdapter(config: config, layout: layout, weights: weights, modelConfig: model)
    }

    /// A copy with other weights (same config and layout): what a trainer hands out.
    public func with(weights: FloatArena) -> LoRAAdapter {
        LoRAAdapter(
            config: config, layout: layout, weights: weights.copy(), biases: biases, modelConfig: modelConfig,
            source: nil)
    }

    /// Trainable parameters (A and B of every slot).
    public var parameterCount: Int { layout.count }

    /// Throws unless `model` has the shape this adapter was made for.
    public func checkCompatible(with model: OPTConfig) throws {
        let mine = modelConfig
        guard mine.hiddenSize == model.hiddenSize, mine.ffnDim == model.ffnDim,
            mine.numHiddenLayers >= (layout.slots.map(\.layer).max() ?? -1) + 1,
            model.numHiddenLayers >= (layout.slots.map(\.layer).max() ?? -1) + 1
        else {
            throw LoRAError.tensorMismatch(
                path: source ?? "adapter",
                reason:
                    "made for hidden_size \(mine.hiddenSize), ffn_dim \(mine.ffnDim), \(mine.numHiddenLayers) layers; "
                    + "the model has \(model.hiddenSize), \(model.ffnDim), \(model.numHiddenLayers)")
        }
    }
}
