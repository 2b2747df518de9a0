// LayerNorm over the last dimension C, eps 1e-5 (OPT). Forward caches mean and rstd for backward.
// Rows are independent: both passes split them over EngineThreads (each row computed the same way
// whatever the split), except a backward that accumulates dweight/dbias, which runs in row order.
//   inp, out: (N, C)   weight, bias: (C)   mean, rstd: (N)
import Foundation

let layerNormEps: Float = 1e-5

public func layerNormForward(
    out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
    inp: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, N: Int, C: Int
) {
    parallelRows(N, width: C) { rows in
        for i in rows {
            let x = inp + i * C
            var sum: Float = 0
            for c in 0..<C { sum += x[c] }
            let m = sum / Float(C)
            var v: Float = 0
            for c in 0..<C { let d = x[c] - m; v += d * d }
            v /= Float(C)
            let s = 1 / (v + layerNormEps).squareRoot()
            let o = out + i * C
            for c in 0..<C {
                let n = (x[c] - m) * s
                o[c] = n * (weight?[c] ?? 1) + (bias?[c] ?? 0)
            }
            mean?[i] = m
            rstd?[i] = s
        }
    }
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
    // dweight and dbias sum over rows: only a pass without them may split the rows
    if dweight == nil && dbias == nil {
        parallelRows(N, width: C, backwardRows)
    } else {
        backwardRows(0..<N)
    }
}
