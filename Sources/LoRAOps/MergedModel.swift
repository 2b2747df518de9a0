// Merging: an adapter folded into the base weights, W' = W + scale · B·A (peft's merge), for inference
// at base speed. Only the adapted matrices are copied (as F32, whatever the base dtype); every other
// tensor is shared with the base model, which is left untouched — so unmerging is exact: it is the
// original model.
import OPTEngine

/// A base model with one adapter folded in.
public struct MergedModel: Sendable {
    /// The model with W + scale·B·A in the adapted projections.
    public let merged: OPTModel
    /// The original model (exactly: the same object) — what unmerging gives back.
    public let base: OPTModel
    public let adapter: LoRAAdapter

    public var unmerged: OPTModel { base }
}

extension LoRAAdapter {
    /// Folds this adapter into a copy of `base`'s adapted matrices (and the biases it replaces).
    public func merge(into base: OPTModel) throws -> MergedModel {
        try checkCompatible(with: base.config)
        var weights = base.weights
        for slot in layout.slots {
            var lw = weights.layers[slot.layer].linear(slot.module)
            let w = lw.weight.toF32()  // (N, K) F32 copy
            guard let wp = w.mutableFloats else {
                throw LoRAError.invalidRequest(
                    "could not copy the weight of \(adapterModuleName(layer: slot.layer, module: slot.module))")
            }
            mergeDelta(
                weight: wp, a: self.weights.a(slot), b: self.weights.b(slot), scale: slot.scale,
                N: slot.outFeatures, K: slot.inFeatures, r: slot.r)
            lw.weight = w
            weights.layers[slot.layer].setLinear(slot.module, lw)
        }
        for (site, bias) in biases.projections {
            var lw = weights.layers[site.layer].linear(site.module)
            lw.bias = Tensor.f32(bias, shape: [bias.count])
            weights.layers[site.layer].setLinear(site.module, lw)
        }
        for (name, bias) in biases.layerNorms {
            let t = Tensor.f32(bias, shape: [bias.count])
            if name == "final_layer_norm" {
                guard weights.lnFinal != nil else {
                    throw LoRAError.tensorMismatch(
                        path: source ?? "adapter", reason: "the model has no final_layer_norm")
                }
                weights.lnFinal?.bias = t
                continue
            }
            // layers.N.self_attn_layer_norm / layers.N.final_layer_norm
            let parts = name.split(separator: ".")
            guard parts.count == 3, let l = Int(parts[1]), l < weights.layers.count else {
                throw LoRAError.tensorMismatch(path: source ?? "adapter", reason: "unknown layer norm '\(name)'")
            }
            if parts[2] == "self_attn_layer_norm" {
                weights.layers[l].lnAttn.bias = t
            } else {
                weights.layers[l].lnFfn.bias = t
            }
        }
        let model = try OPTModel(
            config: base.config, weights: weights, directory: base.directory,
            memoryBudget: base.memoryBudget)
        return MergedModel(merged: model, base: base, adapter: self)
    }
}

/// weight (N, K) += scale · B (N, r) · A (r, K)
public func mergeDelta(
    weight: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
    scale: Float, N: Int, K: Int, r: Int
) {
    BLAS.gemm(
        M: N, N: K, K: r, alpha: scale, a: b, lda: r, b: a, ldb: K, bTransposed: false, beta: 1,
        c: weight, ldc: K)
}
