// Attention's row softmax (CKernels' muwa_softmax): every table the host has against the plain-C reference
// and a Double computation, the masked and causal limits, the uniform row of a query that sees no key, and
// the property the engine relies on for "the same bits alone and in a batch": a row whose keys are shifted
// right behind padding gets the same bits.
import CKernels
import XCTest
@testable import OPTEngine

final class SoftmaxKernelTests: XCTestCase {
    func scores(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * 12 }
    }

    /// Double softmax over the valid entries; 0 elsewhere; 1/n everywhere when none is valid.
    func expected(_ row: [Float], limit: Int, mask: [UInt8]?) -> [Double] {
        let valid = (0..<row.count).map { j in j < limit && (mask.map { $0[j] != 0 } ?? true) }
        guard let top = zip(row, valid).filter({ $0.1 }).map({ Double($0.0) }).max() else {
            return Array(repeating: 1 / Double(row.count), count: row.count)
        }
        let e = zip(row, valid).map { $0.1 ? Foundation.exp(Double($0.0) - top) : 0 }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }

    func testEveryTableMatchesTheReferenceUnderMasksAndLimits() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for n in [1, 5, 16, 17, 40, 100] {
            let row = scores(n, seed: UInt64(n))
            let mask: [UInt8] = (0..<n).map { $0 % 7 == 3 ? 0 : 1 }
            for limit in [0, 1, n / 2, n] {
                for useMask in [false, true] {
                    let want = expected(row, limit: limit, mask: useMask ? mask : nil)
                    for isa in KernelISA.supported {
                        KernelISA.select(isa)
                        var got = row
                        if useMask {
                            mask.withUnsafeBufferPointer { muwa_softmax(&got, n, limit, $0.baseAddress) }
                        } else {
                            muwa_softmax(&got, n, limit, nil)
                        }
                        let err = zip(got, want).map { abs(Double($0) - $1) }.max() ?? 0
                        XCTAssertLessThan(err, 1e-6, "\(isa) n \(n) limit \(limit) mask \(useMask)")
                        for (j, p) in got.enumerated() where want[j] == 0 {
                            XCTAssertEqual(p, 0, "\(isa): entry \(j) is not a visible key")
                        }
                    }
                }
            }
        }
    }

    func testARowBehindPaddingGetsTheBitsItGetsAlone() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        let n = 37, row = scores(n, seed: 9)
        for isa in KernelISA.supported {
            KernelISA.select(isa)
            var alone = row
            muwa_softmax(&alone, n, n, nil)
            for pad in [1, 5, 16, 23] {
                var padded = [Float](repeating: 3, count: pad) + row
                let mask = [UInt8](repeating: 0, count: pad) + [UInt8](repeating: 1, count: n)
                mask.withUnsafeBufferPointer { muwa_softmax(&padded, pad + n, pad + n, $0.baseAddress) }
                XCTAssertEqual(Array(padded[pad...]).map(\.bitPattern), alone.map(\.bitPattern), "\(isa) pad \(pad)")
                XCTAssertEqual(Array(padded[..<pad]), [Float](repeating: 0, count: pad))
            }
        }
    }

    func testExtremeScoresStayFinite() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for isa in KernelISA.supported {
            KernelISA.select(isa)
            var row: [Float] = [80, -80, 0, 88, -200, 1e30, -1e30, 87.5]
            muwa_softmax(&row, row.count, row.count, nil)
            XCTAssertTrue(row.allSatisfy { $0.isFinite && $0 >= 0 }, "\(isa): \(row)")
            XCTAssertEqual(row[5], 1, accuracy: 1e-6, isa)
            XCTAssertEqual(Double(row.reduce(0, +)), 1, accuracy: 1e-6, isa)
        }
    }
    /// muwa_exp_sum (the loss head's softmax) on every table against the libm reference: the max exactly, each
    /// exponential within 2 ulp, the double sum within float rounding, lengths that leave a partial vector, out
    /// the input itself; and a NaN logit: skipped by the max, NaN in its own place and in the sum, on every path.
    func testExpSumMatchesTheReferenceOnEveryTable() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        var rng = SeededRNG(seed: 77)
        for n in [1, 15, 16, 17, 50_272] {
            let x = (0..<n).map { _ in Float(rng.nextUnit() * 40 - 20) }
            var refOut = [Float](repeating: 0, count: n), refMax: Float = 0
            let refSum = muwa_exp_sum_reference(x, n, &refOut, &refMax)
            for isa in KernelISA.supported {
                KernelISA.select(isa)
                var out = x, maxv: Float = 0
                let sum = out.withUnsafeMutableBufferPointer {
                    muwa_exp_sum($0.baseAddress!, n, $0.baseAddress!, &maxv)
                }
                XCTAssertEqual(maxv, refMax, "\(isa) n \(n)")
                XCTAssertEqual(sum, refSum, accuracy: refSum * 1e-6, "\(isa) n \(n)")
                for j in 0..<n {
                    XCTAssertEqual(out[j], refOut[j], accuracy: max(refOut[j] * 3e-7, 1e-30), "\(isa) n \(n) j \(j)")
                }
                guard n > 2 else { continue }
                var withNaN = x
                withNaN[1] = .nan
                var nanOut = withNaN, nanMax: Float = 0
                let nanSum = muwa_exp_sum(withNaN, n, &nanOut, &nanMax)
                XCTAssertEqual(nanMax, refMax == x[1] ? withNaN.filter { !$0.isNaN }.max()! : refMax, "\(isa) n \(n)")
                XCTAssertTrue(nanOut[1].isNaN && nanSum.isNaN, "\(isa) n \(n)")
            }
        }
    }

    /// Exponentials near and below the float range's bottom (normal, subnormal, 0) and at its top: every table
    /// within 2 ulp of libm (the AVX2 form scales by 2^n in two halves, the last product rounding once).
    func testExpSumAtTheEdgesOfTheFloatRange() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        let x: [Float] = [0, -80, -87, -87.4, -88.5, -90, -95, -100, -103.2, -103.9, -104.5, -150, -1e30, -20, -0.25]
        var refOut = [Float](repeating: 0, count: x.count), refMax: Float = 0
        let refSum = muwa_exp_sum_reference(x, x.count, &refOut, &refMax)
        for isa in KernelISA.supported {
            KernelISA.select(isa)
            var out = [Float](repeating: .nan, count: x.count), maxv: Float = 0
            let sum = muwa_exp_sum(x, x.count, &out, &maxv)
            XCTAssertEqual(sum, refSum, accuracy: refSum * 1e-6, isa)
            for j in x.indices {
                XCTAssertEqual(
                    out[j], refOut[j], accuracy: max(refOut[j] * 3e-7, 2 * Float.leastNonzeroMagnitude),
                    "\(isa) x \(x[j])")
            }
            let top: [Float] = [88.7, 88.72, 0]  // the max is subtracted first: e^0 = 1 for the largest
            var topOut = [Float](repeating: .nan, count: 3)
            _ = muwa_exp_sum(top, top.count, &topOut, &maxv)
            XCTAssertEqual(topOut[1], 1, isa)
            XCTAssertTrue(topOut.allSatisfy { $0.isFinite }, isa)
        }
    }
}
