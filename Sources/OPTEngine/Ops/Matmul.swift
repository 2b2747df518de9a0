// Matmul: the one kernel interface every projection goes through.
//   out[M, N] = inp[M, K] · Wᵀ + bias      W: [N, K] in PyTorch's nn.Linear layout, any DType.
// F32 weights go straight to OpenBLAS. BF16/F16 weights are widened block by block into a small
// scratch buffer and multiplied there, so narrow checkpoints stay narrow in memory. matmulNaive is
// the reference the tests hold the fast path to. Up to `rowInvariantMaxRows` rows (decode, alone or in a
// batch) go through the fused widen-and-dot kernels of CKernels, split across the cores: they read each
// weight once for all the rows, and compute every row with the same operations in the same order whatever
// the other rows are, so a sequence decodes to the same bits alone or in any batch.
import CKernels
import Dispatch
import Foundation

/// Scratch for kernels that widen narrow weights; allocated once per model session, never per call.
public final class KernelScratch: @unchecked Sendable {
    /// Widened weights per block: large enough that each sgemm call does real work (16 MiB).
    public static let capacityFloats = 4 << 20
    let buffer: UnsafeMutablePointer<Float>
    let capacity: Int

    public init(maxInputDim K: Int, capacityFloats: Int = KernelScratch.capacityFloats, bf16BlockHalves: Int = 4 << 20)
    {
        capacity = max(capacityFloats, K)
        buffer = .allocate(capacity: capacity)
        self.bf16BlockHalves = max(bf16BlockHalves, K, 1)
    }

    /// Rows of a [N, K] weight that fit in the buffer at once.
    func blockRows(K: Int) -> Int { max(1, capacity / max(K, 1)) }

    /// bf16 weight rows dequantized from int8 for the bf16 backward product (MatmulBF16.swift): `bf16BlockHalves`
    /// values (8 MiB by default, at least one row), allocated on first use.
    private(set) lazy var bf16Block = ByteRegion(allocating: bf16BlockHalves * 2)
    let bf16BlockHalves: Int

    deinit { buffer.deallocate() }
}

@inline(__always)
func addBias(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, M: Int, N: Int) {
    guard let bias else { return }
    parallelRows(M, width: N) { rows in
        for m in rows {
            let row = out + m * N
            for n in 0..<N { row[n] += bias[n] }
        }
    }
}

/// Up to this many rows, products use the row-invariant kernels (a row's result never depends on the others).
public let rowInvariantMaxRows = 16

/// Weight rows per claimed chunk of a row product whose rows are `rowBytes` long: about 64 KiB of weights, so a
/// chunk's work dwarfs claiming it and a layer's rows split into dozens of chunks.
func rowChunk(K rowBytes: Int) -> Int { max(8, (64 << 10) / max(rowBytes, 1)) }

/// out[M, N] = inp[M, K] · weightᵀ (+ bias); `accumulate` adds into `out` instead of overwriting.
public func matmul(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, bias: UnsafePointer<Float>?,
    M: Int, K: Int, N: Int, scratch: KernelScratch, accumulate: Bool = false
) {
    let beta: Float = accumulate ? 1 : 0
    let dtype = weight.dtype
    if dtype == .i8, let scales = weight.int8Rows {  // int8 weights: MatmulInt8.swift
        matmulInt8(
            out: out, inp: inp, weight: weight, rows: scales, bias: bias, M: M, K: K, N: N, scratch: scratch,
            accumulate: accumulate)
        return
    }
    if M <= rowInvariantMaxRows, dtype == .f32 || dtype == .bf16 || dtype == .f16 {
        let raw = weight.raw, acc: Int32 = accumulate ? 1 : 0
        // chunks of weight rows claimed by whichever thread is free (each row's result is its own)
        EngineThreads.forEachClaimedChunk(N, grain: N >= 256 ? rowChunk(K: K * dtype.byteSize) : N) { r in
            let n0 = r.lowerBound, n1 = r.upperBound
            switch dtype {
            case .f32: muwa_gemv_rows_f32(raw.assumingMemoryBound(to: Float.self), inp, M, out, N, n0, n1, K, acc)
            case .bf16: muwa_gemv_rows_bf16(raw.assumingMemoryBound(to: UInt16.self), inp, M, out, N, n0, n1, K, acc)
            default: muwa_gemv_rows_f16(raw.assumingMemoryBound(to: UInt16.self), inp, M, out, N, n0, n1, K, acc)
            }
        }
        addBias(out, bias, M: M, N: N)
        return
    }
    if weight.computesInBF16, bf16GemmRuns(for: weight) {
        matmulBF16(out: out, inp: inp, weight: weight, M: M, K: K, N: N, scratch: scratch, accumulate: accumulate)
        addBias(out, bias, M: M, N: N)
        return
    }
    switch dtype {
    case .f32:
        let w = weight.raw.assumingMemoryBound(to: Float.self)
        BLAS.gemm(M: M, N: N, K: K, a: inp, lda: K, b: w, ldb: K, bTransposed: true, beta: beta, c: out, ldc: N)
    default:
        let blockRows = scratch.blockRows(K: K)
        var n0 = 0
        while n0 < N {
            let nb = min(blockRows, N - n0)
            weight.convertToFloat(start: n0 * K, count: nb * K, into: scratch.buffer)
            if M == 1 {
                BLAS.gemv(rows: nb, cols: K, a: scratch.buffer, lda: K, x: inp, beta: beta, y: out + n0)
            } else {
                BLAS.gemm(
                    M: M, N: nb, K: K, a: inp, lda: K, b: scratch.buffer, ldb: K, bTransposed: true,
                    beta: beta, c: out + n0, ldc: N)
            }
            n0 += nb
        }
    }
    addBias(out, bias, M: M, N: N)
}

/// One projection of an input several share (q, k and v of a layer): out[M, N] = inp · weightᵀ + bias.
struct SharedInputProjection {
    var out: UnsafeMutablePointer<Float>
    var weight: Tensor
    var bias: UnsafePointer<Float>?
    var N: Int
}

/// Each projection's `matmul` of the one input, with each output's bits. Int8 weights with more than
/// `rowInvariantMaxRows` rows share the input's quantization and packing (MatmulInt8.swift); other weights run
/// one by one.
func matmulSharingInput(
    _ projections: [SharedInputProjection], inp: UnsafePointer<Float>, M: Int, K: Int, scratch: KernelScratch
) {
    if M > rowInvariantMaxRows {
        let int8 = projections.compactMap { p in
            p.weight.dtype == .i8
                ? p.weight.int8Rows.map { Int8Product(out: p.out, weight: p.weight, scales: $0, bias: p.bias, N: p.N) }
                : nil
        }
        if int8.count == projections.count {
            matmulInt8(int8, inp: inp, M: M, K: K, scratch: scratch, accumulate: false)
            return
        }
    }
    for p in projections {
        matmul(out: p.out, inp: inp, weight: p.weight, bias: p.bias, M: M, K: K, N: p.N, scratch: scratch)
    }
}

/// Reference: the same product with plain loops and Double accumulation.
func matmulNaive(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: Tensor, bias: UnsafePointer<Float>?,
    M: Int, K: Int, N: Int
) {
    for m in 0..<M {
        for n in 0..<N {
            var acc = Double(bias?[n] ?? 0)
            for k in 0..<K { acc += Double(inp[m * K + k]) * Double(weight.element(n * K + k)) }
            out[m * N + n] = Float(acc)
        }
    }
}
