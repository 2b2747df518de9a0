// Dropout with counter-based masks. Whether element i of a stream is kept is a pure function of
// (seed, micro-step, layer, site, i) — a SplitMix64 hash, no RNG state — so the backward pass and
// gradient checkpointing regenerate the forward pass's mask exactly, and a run restored from a
// checkpoint continues with the masks it would have drawn. (Bit parity with torch's RNG is not a goal.)
// Kept elements are scaled by 1 / (1 − p), as nn.Dropout does. The loops run in kernels_dropout.c
// (muwa_dropout_row: the same hash, 8 lanes at a time with AVX-512), `keeps` is the same test in Swift.
// A packed batch (TrainingActivations) draws its masks by padded element index — row r of a packed
// (rows, cols) matrix is row paddedRow[r] of the padded one — so a token's mask does not depend on how
// much padding its batch would have carried.
//   inp, out, dout, dinp: (count), or (rows, cols) with paddedRow: (rows)
import CKernels
import OPTEngine

public struct DropoutMask: Sendable, Equatable {
    public let p: Float
    let key: UInt64
    let threshold: UInt64  // keep when the top 24 bits of the hash are ≥ threshold
    let scale: Float

    /// The mask of one site: `site` 0–5 are the LoRA inputs of q, k, v, out, fc1, fc2; 6 and 7 OPT's
    /// residual dropout after self-attention and after fc2.
    public init(p: Float, seed: UInt64, microStep: UInt64, layer: Int, site: Int) {
        self.p = p
        self.key = mix64(seed ^ mix64(microStep &+ 0x5151) ^ mix64(UInt64(layer * 16 + site) &+ 0xA0A0_0000))
        self.threshold = UInt64((Double(p) * Double(1 << 24)).rounded())
        self.scale = p < 1 ? 1 / (1 - p) : 0
    }

    public var isIdentity: Bool { p <= 0 }

    @inline(__always)
    public func keeps(_ i: Int) -> Bool {
        (mix64(key &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15) >> 40) >= threshold
    }

    /// out = inp ⊙ keep / (1 − p)   (out may be inp)
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count n: Int) {
        parallelElements(n) { range in
            row(out + range.lowerBound, inp + range.lowerBound, range.count, first: range.lowerBound, accumulate: false)
        }
    }

    /// dinp += dout ⊙ keep / (1 − p)
    public func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, count n: Int) {
        parallelElements(n) { range in
            row(
                dinp + range.lowerBound, dout + range.lowerBound, range.count, first: range.lowerBound, accumulate: true
            )
        }
    }

    /// x ⊙= keep / (1 − p), in place (the gradient through a dropout whose output was written in place).
    public func applyInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        forward(out: x, inp: x, count: n)
    }

    // MARK: packed rows (element (r, c) is padded element paddedRow[r]·cols + c)

    /// out = inp ⊙ keep / (1 − p) over a packed (rows, cols) matrix.
    public func forward(
        out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int, cols: Int,
        paddedRow: UnsafePointer<Int>
    ) {
        parallelRows(rows, width: cols) { range in
            for r in range {
                row(out + r * cols, inp + r * cols, cols, first: paddedRow[r] * cols, accumulate: false)
            }
        }
    }

    /// dinp += dout ⊙ keep / (1 − p) over a packed (rows, cols) matrix.
    public func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, rows: Int, cols: Int,
        paddedRow: UnsafePointer<Int>
    ) {
        parallelRows(rows, width: cols) { range in
            for r in range {
                row(dinp + r * cols, dout + r * cols, cols, first: paddedRow[r] * cols, accumulate: true)
            }
        }
    }

    /// x ⊙= keep / (1 − p), in place, over a packed (rows, cols) matrix.
    public func applyInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, paddedRow: UnsafePointer<Int>) {
        forward(out: x, inp: x, rows: rows, cols: cols, paddedRow: paddedRow)
    }

    /// n elements of the stream from element `first`: out = in ⊙ keep · scale, or out += that where kept.
    @inline(__always)
    private func row(
        _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ n: Int, first: Int, accumulate: Bool
    ) {
        muwa_dropout_row(out, inp, n, key, UInt64(first), threshold, scale, accumulate ? 1 : 0)
    }
}

/// SplitMix64's finaliser: a bijective 64-bit hash.
@inline(__always)
func mix64(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
