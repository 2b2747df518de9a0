// Dropout with counter-based masks. Whether element i of a stream is kept is a pure function of
// (seed, micro-step, layer, site, i) — a SplitMix64 hash, no RNG state — so the backward pass and
// gradient checkpointing regenerate the forward pass's mask exactly, and a run restored from a
// checkpoint continues with the masks it would have drawn. (Bit parity with torch's RNG is not a goal.)
// Kept elements are scaled by 1 / (1 − p), as nn.Dropout does.
//   inp, out, dout, dinp: (count)

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
        for i in 0..<n { out[i] = keeps(i) ? inp[i] * scale : 0 }
    }

    /// dinp += dout ⊙ keep / (1 − p)
    public func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n where keeps(i) { dinp[i] += dout[i] * scale }
    }

    /// x ⊙= keep / (1 − p), in place (the gradient through a dropout whose output was written in place).
    public func applyInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { x[i] = keeps(i) ? x[i] * scale : 0 }
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
