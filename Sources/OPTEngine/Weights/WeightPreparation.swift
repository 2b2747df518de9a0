// Preparing a checkpoint's matrices for the EngineOptions a model is loaded with: narrowing to bf16 for bf16
// compute, quantizing to int8. Runs once at load, before the memory check.
extension OPTWeights {
    mutating func prepare(for options: EngineOptions) throws {
        if options.compute == .bf16 {
            throw EngineError.invalidRequest("compute bf16 is not available in this build yet")
        }
        // .auto: f32 until the bf16 kernels exist
        if options.weights == .int8 {
            try quantizeInt8(threshold: options.int8Threshold)
        }
    }

    /// weights int8, as transformers' `load_in_8bit` with bitsandbytes: every nn.Linear of the decoder —
    /// q/k/v/out_proj, fc1, fc2 and project_in/out — becomes int8 per output row (LLM.int8 with `threshold`;
    /// Tensor.quantizedInt8); the embeddings and the lm_head (tied to embed_tokens in OPT) keep their stored
    /// dtype, as bitsandbytes skips the output embedding.
    mutating func quantizeInt8(threshold: Float) throws {
        func q(_ lw: inout LinearWeights) throws { lw.weight = try lw.weight.quantizedInt8(threshold: threshold) }
        for l in layers.indices {
            try q(&layers[l].qProj)
            try q(&layers[l].kProj)
            try q(&layers[l].vProj)
            try q(&layers[l].outProj)
            try q(&layers[l].fc1)
            try q(&layers[l].fc2)
        }
        if let p = projectIn { projectIn = try p.quantizedInt8(threshold: threshold) }
        if let p = projectOut { projectOut = try p.quantizedInt8(threshold: threshold) }
    }
}
