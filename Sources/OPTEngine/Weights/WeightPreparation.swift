// Preparing a checkpoint's matrices for the EngineOptions a model is loaded with: narrowing to bf16 for bf16
// compute, quantizing to int8. Runs once at load, before the memory check.
import CKernels

extension OPTWeights {
    mutating func prepare(for options: EngineOptions) throws {
        // int8 first (the projections, as bitsandbytes), then bf16 for what is left (lm_head; every matrix when
        // weights are stored): explicit bf16, or auto on a CPU with avx512_bf16. Without avx512_bf16 an explicit
        // bf16 still works: bf16 weights, widened to f32 for the many-row products (BF16Preparation.swift).
        if options.weights == .int8 {
            try quantizeInt8(threshold: options.int8Threshold)
            // auto on a CPU without bf16: the int8 base's input gradients still take the integer product where
            // one runs (AVX2: int16 gradients, 2^-16 of each block's largest — finer than the int8 forward's own
            // 2^-8 input rounding; on Zen 3 about 1.6 times f32 FMAs)
            if options.compute == .auto, options.precision == .f32, muwa_i8_backward_bits() != 0 {
                try transformProjections { weight in
                    var w = weight
                    if w.dtype == .i8 { w.integerInputGradients = true }
                    return w
                }
            }
        }
        if options.precision == .bf16 { try narrowMatricesToBF16() }
    }

    /// weights int8, as transformers' `load_in_8bit` with bitsandbytes: every nn.Linear of the decoder —
    /// q/k/v/out_proj, fc1, fc2 and project_in/out — becomes int8 per output row (LLM.int8 with `threshold`;
    /// Tensor.quantizedInt8); the embeddings and the lm_head (tied to embed_tokens in OPT) keep their stored
    /// dtype (bf16 under bf16 compute), as bitsandbytes skips the output embedding.
    mutating func quantizeInt8(threshold: Float) throws {
        try transformProjections { try $0.quantizedInt8(threshold: threshold) }
    }

    /// Replaces every linear layer's weight matrix (q/k/v/out_proj, fc1, fc2) and project_in/out by `f` of it.
    mutating func transformProjections(_ f: (Tensor) throws -> Tensor) throws {
        for l in layers.indices {
            for m in ProjectionModule.allCases {
                var lw = layers[l].linear(m)
                lw.weight = try f(lw.weight)
                layers[l].setLinear(m, lw)
            }
        }
        projectIn = try projectIn.map(f)
        projectOut = try projectOut.map(f)
    }
}
