// Products with one small dimension r — a LoRA adapter's rank — against activations [M, L]
// (kernels_lowrank.c), split across the engine's threads by rows or by columns. A BLAS GEMM runs these
// shapes far below its peak and below the size the engine splits across threads (BLAS.splitMinimumProducts).
// y(i, l) is y[i·L + l] for an [r, L] operand (lora_A) or y[l·r + i] for an [L, r] one (lora_B, `yIsLR`);
// z likewise. A result never depends on the thread count: each sum runs over its whole reduction in order.
//   rowsDot  out (M, r)  = α · x (M, L) · yᵀ          rowsAdd  out (M, L) += α · u (M, r) · y
//   colsAcc  z (r, L)   += α · uᵀ (r, M) · x (M, L)
import CKernels

public enum LowRank {
    /// out[m, i] = alpha · Σ_l x[m, l] · y(i, l)  for m < M, i < r  (out rows `ldo` apart).
    public static func rowsDot(
        out: UnsafeMutablePointer<Float>, ldo: Int, x: UnsafePointer<Float>, ldx: Int, y: UnsafePointer<Float>,
        yIsLR: Bool, M: Int, L: Int, r: Int, alpha: Float = 1
    ) {
        forEachRange(M, multiple: 4, work: M * L * r) { m0, m1 in
            muwa_lowrank_rows_dot(out, ldo, x, ldx, y, yIsLR ? 1 : 0, L, r, alpha, m0, m1)
        }
    }

    /// out[m, l] += alpha · Σ_i u[m, i] · y(i, l)  for m < M, l < L.
    public static func rowsAdd(
        out: UnsafeMutablePointer<Float>, ldo: Int, u: UnsafePointer<Float>, ldu: Int, y: UnsafePointer<Float>,
        yIsLR: Bool, M: Int, L: Int, r: Int, alpha: Float = 1
    ) {
        forEachRange(M, multiple: 4, work: M * L * r) { m0, m1 in
            muwa_lowrank_rows_add(out, ldo, u, ldu, y, yIsLR ? 1 : 0, L, r, alpha, m0, m1)
        }
    }

    /// z(i, l) += alpha · Σ_m u[m, i] · x[m, l]  for i < r, l < L.
    public static func colsAcc(
        z: UnsafeMutablePointer<Float>, zIsLR: Bool, u: UnsafePointer<Float>, ldu: Int, x: UnsafePointer<Float>,
        ldx: Int, M: Int, L: Int, r: Int, alpha: Float = 1
    ) {
        forEachRange(L, multiple: 64, work: M * L * r) { l0, l1 in
            muwa_lowrank_cols_acc(z, zIsLR ? 1 : 0, u, ldu, x, ldx, M, L, r, alpha, l0, l1)
        }
    }

    /// Products of at least this many multiply-adds are split across the engine's threads (~20 µs of work).
    static let splitMinimumProducts = 1 << 18

    /// body(lo, hi) over 0..<n in one range per thread (boundaries multiples of `multiple`), or one range
    /// when the product is small.
    @inline(__always)
    private static func forEachRange(_ n: Int, multiple: Int, work: Int, _ body: (Int, Int) -> Void) {
        guard n > 0 else { return }
        let threads = EngineThreads.count
        guard threads > 1, work >= splitMinimumProducts, n > multiple else {
            body(0, n)
            return
        }
        let share = (n + threads - 1) / threads
        let grain = (share + multiple - 1) / multiple * multiple
        EngineThreads.forEachChunk(n, grain: grain) { range in body(range.lowerBound, range.upperBound) }
    }
}
