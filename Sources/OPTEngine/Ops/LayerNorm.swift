// LayerNorm over the last dimension C, eps 1e-5 (OPT). Forward caches mean and rstd for backward.
// Rows are independent: both passes split them over EngineThreads (each row computed the same way
// whatever the split), except a backward that accumulates dweight/dbias, which runs in row order.
//   inp, out: (N, C)   weight, bias: (C)   mean, rstd: (N)
import CKernels
import Foundation

let layerNormEps: Float = 1e-5

public func layerNormForward(
    out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
    inp: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, N: Int, C: Int
) {
    parallelRows(N, width: C) { rows in
        for i in rows {
            let x = inp + i * C
            let m = laneSum(C) { x[$0] } / Float(C)
            let v =
                laneSum(C) {
                    let d = x[$0] - m; return d * d
                } / Float(C)
            let s = 1 / (v + layerNormEps).squareRoot()
            let o = out + i * C
            if let weight, let bias {  // OPT's case, a loop the compiler vectorizes
                for c in 0..<C { o[c] = (x[c] - m) * s * weight[c] + bias[c] }
            } else {
                for c in 0..<C {
                    let n = (x[c] - m) * s
                    o[c] = n * (weight?[c] ?? 1) + (bias?[c] ?? 0)
                }
            }
            mean?[i] = m
            rstd?[i] = s
        }
    }
}

/// Σ_{c < n} term(c) in 8 interleaved partial sums (c mod 8), added pairwise at the end: 8 independent chains
/// instead of one (a single running sum waits on each add), in an order fixed by n alone, so a row's result
/// never depends on anything but the row.
@inline(__always)
func laneSum(_ n: Int, _ term: (Int) -> Float) -> Float {
    var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0
    var a4: Float = 0, a5: Float = 0, a6: Float = 0, a7: Float = 0
    var c = 0
    while c + 8 <= n {
        a0 += term(c); a1 += term(c + 1); a2 += term(c + 2); a3 += term(c + 3)
        a4 += term(c + 4); a5 += term(c + 5); a6 += term(c + 6); a7 += term(c + 7)
        c += 8
    }
    while c < n {
        a0 += term(c)
        c += 1
    }
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
}

/// Backward: accumulates into dinp, dweight, dbias (any may be nil when not needed).
public func layerNormBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
    mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int
) {
    let backwardRows = { (rows: Range<Int>) in
        for i in rows {
            let x = inp + i * C, dy = dout + i * C
            let m = mean[i], s = rstd[i]
            var dnormMean: Float = 0, dnormNormMean: Float = 0
            for c in 0..<C {
                let n = (x[c] - m) * s
                let dn = (weight?[c] ?? 1) * dy[c]
                dnormMean += dn
                dnormNormMean += dn * n
            }
            dnormMean /= Float(C)
            dnormNormMean /= Float(C)
            for c in 0..<C {
                let n = (x[c] - m) * s
                let dn = (weight?[c] ?? 1) * dy[c]
                dbias?[c] += dy[c]
                dweight?[c] += n * dy[c]
                if let dinp { dinp[i * C + c] += (dn - dnormMean - n * dnormNormMean) * s }
            }
        }
    }
    // dweight and dbias sum over rows: only a pass without them may split the rows (and runs in C:
    // kernels_layernorm.c, the same arithmetic with its sums in 16 lanes)
    if dweight == nil && dbias == nil {
        guard let dinp else { return }
        parallelRows(N, width: C) { rows in
            muwa_layernorm_backward_rows(dinp, dout, inp, weight, mean, rstd, C, rows.lowerBound, rows.upperBound)
        }
    } else {
        backwardRows(0..<N)
    }
}
