// Narrowing a checkpoint's matrices to bf16 for bf16 compute (EngineOptions.precision == .bf16), once at load:
// q/k/v/out_proj, fc1, fc2, project_in/out and lm_head become plain row-major [N, K] BF16 — one copy each,
// read by the decode kernels (≤ 16 rows) and, through `Tensor.computesInBF16`, by the bf16 GEMM for more
// rows. BF16 checkpoints are used in place (memory-mapped, nothing copied); F32/F16 matrices are rounded to
// nearest even into new heap regions, and the pages of the checkpoint they came from are dropped from memory
// as each is done, so the peak stays near the bf16 size. Embeddings, biases and norms stay as they are (f32,
// as under PyTorch's autocast); a tied lm_head gets its own bf16 copy while the embedding table stays mapped.
import CKernels
import Dispatch

extension OPTWeights {
    /// Every matrix of a linear layer (and lm_head) as BF16 marked for bf16 compute.
    mutating func narrowMatricesToBF16() throws {
        try transformProjections { try $0.preparedForBF16() }
        lmHead = try lmHead.preparedForBF16()
    }
}

extension Tensor {
    /// This matrix as BF16 with `computesInBF16` set: itself when already BF16, else a rounded heap copy; an int8
    /// matrix stays int8 with the flag set (its input gradient then runs in bf16).
    func preparedForBF16() throws -> Tensor {
        guard shape.count == 2 else {
            throw EngineError.invalidRequest("compute bf16: expected a matrix, got shape \(shape)")
        }
        var out: Tensor
        switch dtype {
        case .bf16:
            out = self
        case .f32, .f16:
            let (bytes, overflow) = count.multipliedReportingOverflow(by: 2)
            guard !overflow else { throw EngineError.invalidRequest("compute bf16: matrix \(shape) too large") }
            let region = ByteRegion(allocating: bytes)
            guard let dst = region.mutableBase?.bindMemory(to: UInt16.self, capacity: count) else {
                throw EngineError.invalidRequest("compute bf16: could not allocate \(bytes) bytes")
            }
            roundToBF16(into: dst)
            self.region.dropResidentPages(offset: byteOffset, count: byteCount)
            out = Tensor(dtype: .bf16, shape: shape, region: region)
        case .i8:  // weights int8: the quantized projections keep their own kernels; the flag sends the backward
            out = self  // product (training's input gradient) to the bf16 GEMM on dequantized rows (Linear.swift)
        case .i64:
            throw EngineError.invalidRequest("compute bf16: cannot narrow a \(dtype.rawValue) matrix")
        }
        out.computesInBF16 = true
        if dtype == .i8 { out.integerInputGradients = true }
        return out
    }

    /// Rounds every element to bf16 (nearest even) into `dst`, rows split across the cores.
    private func roundToBF16(into dst: UnsafeMutablePointer<UInt16>) {
        let rows = shape[0], cols = shape[1]
        let chunkRows = max(1, (1 << 20) / max(cols, 1))
        let chunks = (rows + chunkRows - 1) / chunkRows
        EngineThreads.run(parts: chunks) { c in
            let r0 = c * chunkRows, r1 = min(rows, r0 + chunkRows)
            if let src = floats {
                muwa_f32_to_bf16_rows(src + r0 * cols, r1 - r0, cols, cols, dst + r0 * cols, cols)
            } else {  // F16: widen a row, then round it
                let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
                defer { row.deallocate() }
                for r in r0..<r1 {
                    convertToFloat(start: r * cols, count: cols, into: row)
                    muwa_f32_to_bf16_rows(row, 1, cols, cols, dst + r * cols, cols)
                }
            }
        }
    }
}
