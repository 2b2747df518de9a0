// BLAS: the only file that imports CBLAS. Thin, spelled-out wrappers over OpenBLAS's sgemm/sgemv so
// the rest of the engine never sees CBLAS enums. Row-major throughout.
import COpenBLAS

public enum BLAS {
    /// C[M,N] = alpha · A[M,K] · op(B) + beta · C, where op(B) = Bᵀ when `bTransposed` (B stored [N,K]).
    @inline(__always)
    public static func gemm(
        M: Int, N: Int, K: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, bTransposed ? CblasTrans : CblasNoTrans,
            Int32(M), Int32(N), Int32(K), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// A general gemm with both transposes spelled out (backward passes need Aᵀ·B).
    @inline(__always)
    public static func gemm(
        aTransposed: Bool, bTransposed: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, aTransposed ? CblasTrans : CblasNoTrans, bTransposed ? CblasTrans : CblasNoTrans,
            Int32(M), Int32(N), Int32(K), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[rows] = alpha · A[rows,cols] · x + beta · y   (or Aᵀ · x into y[cols] when `transposed`).
    @inline(__always)
    public static func gemv(
        rows: Int, cols: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, transposed: Bool = false,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(
            CblasRowMajor, transposed ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols), alpha, a, Int32(lda),
            x, 1, beta, y, 1)
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
