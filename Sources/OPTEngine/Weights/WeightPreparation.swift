// Preparing a checkpoint's matrices for the EngineOptions a model is loaded with: narrowing to bf16 for bf16
// compute, quantizing to int8. Runs once at load, before the memory check.
extension OPTWeights {
    mutating func prepare(for options: EngineOptions) throws {
        if options.weights == .int8 {
            throw EngineError.invalidRequest("weights int8 is not available in this build yet")
        }
        // bf16 (explicit, or auto on a CPU with avx512_bf16): BF16 matrices (BF16Preparation.swift). Without
        // avx512_bf16 an explicit bf16 still works: bf16 weights, widened to f32 for the many-row products.
        if options.precision == .bf16 { try narrowMatricesToBF16() }
    }
}
