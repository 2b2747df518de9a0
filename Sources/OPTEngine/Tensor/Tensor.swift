// Tensor: a typed, shaped view into a ByteRegion. No autograd, no broadcasting: kernels take raw
// pointers. Row-major; shape[0] is the slowest dimension (PyTorch's convention).

import CKernels

public struct Tensor: @unchecked Sendable {
    public let dtype: DType
    public let shape: [Int]
    public let region: ByteRegion
    public let byteOffset: Int
    /// True for a BF16 weight prepared for bf16 compute (WeightPreparation): products of more than
    /// `rowInvariantMaxRows` rows round their activations to bf16 and run the bf16 GEMM (MatmulBF16.swift).
    /// False everywhere else, so a BF16 checkpoint loaded for f32 compute is still widened and multiplied in f32.
    var computesInBF16 = false
    /// True for an int8 weight whose input gradient in training may take the integer product on quantized
    /// gradients (Int8Backward.swift): under bf16 compute, and under `auto` where the CPU has no bf16 but runs
    /// that product (AVX2, VNNI). False keeps the exact f32 product on the dequantized weight.
    var integerInputGradients = false
    /// The per-row scales of an int8 weight (dtype .i8, shape [N, K]); nil for every other tensor.
    let int8Rows: Int8RowScales?

    public init(dtype: DType, shape: [Int], region: ByteRegion, byteOffset: Int = 0, int8Rows: Int8RowScales? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.region = region
        self.byteOffset = byteOffset
        self.int8Rows = int8Rows
    }

    /// A zero-filled F32 tensor of `shape`.
    public static func zeros(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(dtype: .f32, shape: shape, region: ByteRegion(allocating: n * 4))
    }

    /// An F32 tensor holding `values` (copied).
    public static func f32(_ values: [Float], shape: [Int]) -> Tensor {
        let t = zeros(shape)
        values.withUnsafeBufferPointer { src in
            t.mutableFloats!.update(from: src.baseAddress!, count: min(src.count, t.count))
        }
        return t
    }

    public var count: Int { shape.reduce(1, *) }
    /// Bytes of the elements, plus an int8 weight's per-row scales.
    public var byteCount: Int { count * dtype.byteSize + (int8Rows?.byteCount ?? 0) }
    public var raw: UnsafeRawPointer { region.base + byteOffset }

    /// F32 data, or nil for other dtypes.
    public var floats: UnsafePointer<Float>? {
        dtype == .f32 ? raw.assumingMemoryBound(to: Float.self) : nil
    }

    /// Mutable F32 data for heap tensors, nil for mapped or non-F32 tensors.
    public var mutableFloats: UnsafeMutablePointer<Float>? {
        guard dtype == .f32, let m = region.mutableBase else { return nil }
        return (m + byteOffset).assumingMemoryBound(to: Float.self)
    }

    /// Element `i` (flat index) widened to Float32, whatever the dtype.
    public func element(_ i: Int) -> Float {
        switch dtype {
        case .f32: return raw.load(fromByteOffset: i * 4, as: Float.self)
        case .f16: return f16ToFloat(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        case .bf16: return bf16ToFloat(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        case .i8:
            let q = Float(raw.load(fromByteOffset: i, as: Int8.self))
            guard let rows = int8Rows, let K = shape.last, K > 0 else { return q }
            return q * (rows.absmax[i / K] * int8DequantFactor)  // bitsandbytes' int8_vectorwise_dequant
        case .i64: return Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
        }
    }

    /// Writes elements [start, start+n) widened to Float32 into `out`.
    public func convertToFloat(start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            out.update(from: raw.assumingMemoryBound(to: Float.self) + start, count: n)
        case .bf16:
            muwa_widen_bf16((raw + start * 2).assumingMemoryBound(to: UInt16.self), out, n)
        case .f16:
            muwa_widen_f16((raw + start * 2).assumingMemoryBound(to: UInt16.self), out, n)
        case .i8:
            if let rows = int8Rows, let K = shape.last, K > 0, start % K == 0, n % K == 0 {  // whole rows
                rows.dequantize(
                    raw.assumingMemoryBound(to: Int8.self), firstRow: start / K, rowCount: n / K, K: K,
                    into: out)
            } else {
                for i in 0..<n { out[i] = element(start + i) }
            }
        case .i64:
            for i in 0..<n { out[i] = element(start + i) }
        }
    }

    /// The whole tensor as a Float array (tests and small tensors only).
    public func toFloatArray() -> [Float] {
        var result = [Float](repeating: 0, count: count)
        result.withUnsafeMutableBufferPointer { convertToFloat(start: 0, count: count, into: $0.baseAddress!) }
        return result
    }

    /// This tensor converted to a heap F32 tensor (a copy even when already F32).
    public func toF32() -> Tensor {
        let t = Tensor.zeros(shape)
        convertToFloat(start: 0, count: count, into: t.mutableFloats!)
        return t
    }
}
