// Preparing a checkpoint's matrices for the EngineOptions a model is loaded with: narrowing to bf16 for bf16
// compute, quantizing to int8. Runs once at load, before the memory check.
extension OPTWeights {
    mutating func prepare(for options: EngineOptions) throws {
        if options.weights == .int8 {
            throw EngineError.invalidRequest("weights int8 is not available in this build yet")
        }
        if options.compute == .bf16 {
            throw EngineError.invalidRequest("compute bf16 is not available in this build yet")
        }
        // .auto: f32 until the bf16 kernels exist
    }
}
