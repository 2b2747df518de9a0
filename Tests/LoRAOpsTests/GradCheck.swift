// Finite-difference gradient checks in fp32 with careful tolerances. For a scalar f(x) built as
// Σ dout ⊙ op(x) (accumulated in Double), the analytic gradient g is checked (1) along random unit
// directions d: g·d against (f(x + εd) − f(x − εd)) / 2ε, and (2) at random coordinates. Near-zero
// entries are judged against a floor of 5% of the largest |g|, where fp32 differencing noise lives.
// f may answer nil for a point where the difference would straddle a kink (ReLU): that probe is
// skipped, as ggml's test-backend-ops does, and most probes must remain.
import Foundation
import OPTEngine
import XCTest

struct GradCheck {
    var eps: Float = 1e-2
    var rtol = 2e-2
    var directions = 3
    var coordinates = 12
    var seed: UInt64 = 7

    /// `x` is the point, `grad` the analytic gradient at it, `f` evaluates the scalar at any point (nil:
    /// skip this probe).
    func check(
        _ name: String, x: [Float], grad: [Float], f: ([Float]) -> Double?,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        precondition(x.count == grad.count, "\(name): gradient size")
        var rng = SeededRNG(seed: seed)
        let gmax = grad.map { Double(abs($0)) }.max() ?? 0
        let gnorm = grad.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        var skipped = 0
        func diff(_ d: [Float]) -> Double? {
            let plus = zip(x, d).map { $0 + eps * $1 }, minus = zip(x, d).map { $0 - eps * $1 }
            guard let fp = f(plus), let fm = f(minus) else { skipped += 1; return nil }
            return (fp - fm) / (2 * Double(eps))
        }
        for k in 0..<directions {
            let signs = x.map { _ in Float(rng.next() & 1 == 0 ? 1 : -1) }
            let d = signs.map { $0 / Float(x.count).squareRoot() }
            let analytic = zip(grad, d).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            guard let numeric = diff(d) else { continue }
            let scale = max(abs(analytic), abs(numeric), 0.05 * gnorm, 1e-6)
            XCTAssertLessThanOrEqual(
                abs(analytic - numeric) / scale, rtol,
                "\(name): direction \(k): analytic \(analytic) vs numeric \(numeric)",
                file: file, line: line)
        }
        for _ in 0..<min(coordinates, x.count) {
            let i = Int(rng.next() % UInt64(x.count))
            var d = [Float](repeating: 0, count: x.count)
            d[i] = 1
            guard let numeric = diff(d) else { continue }
            let scale = max(abs(Double(grad[i])), abs(numeric), 0.05 * gmax, 1e-6)
            XCTAssertLessThanOrEqual(
                abs(Double(grad[i]) - numeric) / scale, rtol,
                "\(name): coordinate \(i): analytic \(grad[i]) vs numeric \(numeric)",
                file: file, line: line)
        }
        let probes = directions + min(coordinates, x.count)
        XCTAssertLessThanOrEqual(
            skipped * 2, probes, "\(name): \(skipped) of \(probes) probes straddled a kink",
            file: file, line: line)
    }
}

/// Seeded test data.
struct TestData {
    var rng: SeededRNG
    init(seed: UInt64) { rng = SeededRNG(seed: seed) }

    /// n values from N(0, std²) (Box–Muller).
    mutating func normal(_ n: Int, std: Float = 1) -> [Float] {
        (0..<n).map { _ in
            let u = max(rng.nextUnit(), 1e-12), v = rng.nextUnit()
            return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)) * std
        }
    }
}

/// Σ a ⊙ b in Double.
func dot(_ a: [Float], _ b: [Float]) -> Double {
    zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
}
