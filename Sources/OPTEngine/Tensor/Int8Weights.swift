// Int8 weights (LLM.int8, as transformers + bitsandbytes' load_in_8bit): a matrix [N, K] quantized per
// output row at load, q[n, k] = round(W[n, k] · 127 / absmax[n]). The tensor (dtype .i8) holds q; its
// `int8Rows` holds what the kernels need beside it: absmax per row (the scale is absmax/127, bitsandbytes'
// SCB), the sum of each row's int8 values (the VNNI kernels' offset correction), the rows in order of absmax
// (training's input gradient quantizes blocks of that order: Int8Backward.swift) and the layer's outlier
// threshold (features of an input with |x| ≥ threshold are computed in f32; 0: plain int8).
import CKernels
import Dispatch

/// bitsandbytes' int8_vectorwise_dequant factor, 1/127.
let int8DequantFactor: Float = 7.874015718698502e-3

/// Per-row data of an int8 weight [N, K]: absmax [N] f32, rowSums [N] i32, then order [N] i32, in one heap
/// region.
public struct Int8RowScales: @unchecked Sendable {
    public let region: ByteRegion
    public let rows: Int
    /// LLM.int8's outlier threshold for this layer's inputs; 0 = no outliers.
    public let threshold: Float

    init(rows: Int, threshold: Float) {
        self.rows = rows
        self.threshold = threshold
        region = ByteRegion(allocating: rows * 12)
    }

    public var absmax: UnsafePointer<Float> { region.base.assumingMemoryBound(to: Float.self) }
    var rowSums: UnsafePointer<Int32> { (region.base + rows * 4).assumingMemoryBound(to: Int32.self) }
    /// The row indices sorted by absmax (ties by index): a permutation of [0, rows).
    var order: UnsafePointer<Int32> { (region.base + rows * 8).assumingMemoryBound(to: Int32.self) }
    public var byteCount: Int { rows * 12 }

    /// Fills `order` from absmax (after quantization wrote it). NaN scales sort last.
    fileprivate func sortOrder(into base: UnsafeMutableRawPointer) {
        let scale = absmax, out = (base + rows * 8).assumingMemoryBound(to: Int32.self)
        let key = { (n: Int) -> Float in scale[n].isNaN ? .infinity : scale[n] }
        let sorted = (0..<rows).sorted { a, b in key(a) < key(b) || key(a) == key(b) && a < b }
        for (i, n) in sorted.enumerated() { out[i] = Int32(truncatingIfNeeded: n) }
    }

    /// The C kernels' view of the weight whose int8 values are `q`.
    func kernelWeight(_ q: UnsafePointer<Int8>) -> muwa_i8_weight {
        muwa_i8_weight(q: q, absmax: absmax, rowsum: rowSums)
    }

    /// Rows [firstRow, firstRow + rowCount) of `q` dequantized into out [rowCount, K].
    func dequantize(
        _ q: UnsafePointer<Int8>, firstRow: Int, rowCount: Int, K: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        var w = kernelWeight(q)
        muwa_dequantize_i8_rows(&w, firstRow, firstRow + rowCount, K, out)
    }

    /// The same rows rounded to bf16.
    func dequantizeBF16(
        _ q: UnsafePointer<Int8>, firstRow: Int, rowCount: Int, K: Int, into out: UnsafeMutablePointer<UInt16>
    ) {
        var w = kernelWeight(q)
        muwa_dequantize_i8_rows_bf16(&w, firstRow, firstRow + rowCount, K, out)
    }
}

extension Tensor {
    /// This [N, K] matrix (F32, F16 or BF16) quantized to int8 per output row, with LLM.int8 outlier
    /// `threshold` (0: none). Rows are quantized in parallel on `EngineThreads.count`. When this tensor is a mapped
    /// checkpoint's, its pages are released afterwards (the int8 copy replaces it in memory).
    func quantizedInt8(threshold: Float) throws -> Tensor {
        guard shape.count == 2, [.f32, .f16, .bf16].contains(dtype) else {
            throw EngineError.invalidRequest(
                "int8 quantization needs a 2-D F32, F16 or BF16 matrix, not \(dtype.rawValue) \(shape)")
        }
        guard threshold >= 0, threshold.isFinite else {
            throw EngineError.invalidRequest("int8 threshold must be a finite number ≥ 0, not \(threshold)")
        }
        let N = shape[0], K = shape[1]
        let (bytes, overflow) = N.multipliedReportingOverflow(by: K)
        guard !overflow else { throw EngineError.invalidRequest("int8 quantization: \(shape) is too large") }
        let q = ByteRegion(allocating: bytes)
        let scales = Int8RowScales(rows: N, threshold: threshold)
        guard let qBase = q.mutableBase, let sBase = scales.region.mutableBase else {
            throw EngineError.invalidRequest("int8 quantization: allocation is not writable")
        }
        let kind: muwa_dtype = dtype == .f32 ? MUWA_DTYPE_F32 : dtype == .bf16 ? MUWA_DTYPE_BF16 : MUWA_DTYPE_F16
        let src = raw, parts = max(1, min(EngineThreads.count, N))
        EngineThreads.run(parts: parts) { p in
            muwa_quantize_weight_rows(
                kind, src, N * p / parts, N * (p + 1) / parts, K,
                qBase.assumingMemoryBound(to: Int8.self), sBase.assumingMemoryBound(to: Float.self),
                (sBase + N * 4).assumingMemoryBound(to: Int32.self))
        }
        scales.sortOrder(into: sBase)
        region.releasePages(offset: byteOffset, count: byteCount)  // a mapped checkpoint's pages: no longer needed
        return Tensor(dtype: .i8, shape: shape, region: q, int8Rows: scales)
    }
}

extension Tensor {
    /// The dtype as benches print it: "I8 (threshold 6.0)" for an LLM.int8 weight, "I8" for plain int8, else
    /// the stored dtype ("BF16").
    public var dtypeDescription: String {
        guard dtype == .i8, let rows = int8Rows else { return dtype.rawValue }
        return rows.threshold > 0 ? "I8 (threshold \(rows.threshold))" : "I8"
    }
}
