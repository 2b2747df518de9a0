// BLAS: the only file that imports CBLAS. Thin, spelled-out wrappers over OpenBLAS's sgemm/sgemv so
// the rest of the engine never sees CBLAS enums. Row-major throughout.
// OpenBLAS runs single-threaded: its own worker threads spin (sched_yield) for a long while after each call,
// taking cores from the engine's threads (8 % of a training step's samples on 2 cores). Large products are
// split here instead, into EngineThreads.count row or column ranges, each one single-threaded sgemm; each
// output element is computed by the same kernel whatever its range, so the split does not change results.
import COpenBLAS
import Dispatch

public enum BLAS {
    /// C[M,N] = alpha · A[M,K] · op(B) + beta · C, where op(B) = Bᵀ when `bTransposed` (B stored [N,K]).
    @inline(__always)
    public static func gemm(
        M: Int, N: Int, K: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        gemm(
            aTransposed: false, bTransposed: bTransposed, M: M, N: N, K: K, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// A general gemm with both transposes spelled out (backward passes need Aᵀ·B).
    @inline(__always)
    public static func gemm(
        aTransposed: Bool, bTransposed: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let parts = EngineThreads.count
        guard parts > 1, M * N * K >= splitMinimumProducts, max(M, N) >= 2 * parts else {
            sgemm(aTransposed, bTransposed, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if M >= N {  // row ranges: rows m0..<m1 of A (columns of the stored Aᵀ) and of C
            EngineThreads.run(parts: parts) { p in
                let m0 = M * p / parts, m1 = M * (p + 1) / parts
                sgemm(
                    aTransposed, bTransposed, m1 - m0, N, K, alpha, a + (aTransposed ? m0 : m0 * lda), lda, b, ldb,
                    beta, c + m0 * ldc, ldc)
            }
        } else {  // column ranges: columns n0..<n1 of B (rows of the stored Bᵀ) and of C
            EngineThreads.run(parts: parts) { p in
                let n0 = N * p / parts, n1 = N * (p + 1) / parts
                sgemm(
                    aTransposed, bTransposed, M, n1 - n0, K, alpha, a, lda, b + (bTransposed ? n0 * ldb : n0), ldb,
                    beta, c + n0, ldc)
            }
        }
    }

    /// Products of at least this many multiply-adds are split across the engine's threads (~50 µs of work).
    static let splitMinimumProducts = 1 << 23

    @inline(__always)
    private static func sgemm(
        _ aT: Bool, _ bT: Bool, _ M: Int, _ N: Int, _ K: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
        _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        guard M > 0, N > 0 else { return }
        _ = singleThreaded
        cblas_sgemm(
            CblasRowMajor, aT ? CblasTrans : CblasNoTrans, bT ? CblasTrans : CblasNoTrans,
            Int32(M), Int32(N), Int32(K), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[rows] = alpha · A[rows,cols] · x + beta · y   (or Aᵀ · x into y[cols] when `transposed`).
    @inline(__always)
    public static func gemv(
        rows: Int, cols: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, transposed: Bool = false,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        _ = singleThreaded
        cblas_sgemv(
            CblasRowMajor, transposed ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols), alpha, a, Int32(lda),
            x, 1, beta, y, 1)
    }

    /// Set once, before the first product: OpenBLAS's pool would otherwise start with a thread per core. OpenBLAS's
    /// kernels are fitted to the CPU first (`muwa_openblas_fit_core`: a release older than the CPU runs SSE3 code).
    private static let singleThreaded: Void = {
        _ = muwa_openblas_fit_core()
        openblas_set_num_threads(1)
    }()

    /// The OpenBLAS kernels in use (its core name, e.g. SkylakeX), after fitting them to the CPU.
    public static var core: String {
        _ = singleThreaded
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// OpenBLAS's own threads: 1 (EngineThreads.configure sets it; the split above parallelises).
    static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
