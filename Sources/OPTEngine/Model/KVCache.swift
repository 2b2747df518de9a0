// KVCache: keys and values of every layer for a batch of B sequences of up to S tokens.
//   per layer: K, V (B, NH, S, hs) F32 — one allocation for the whole cache, sliced by layer.

public final class KVCache: @unchecked Sendable {
    public let layers: Int, B: Int, NH: Int, S: Int, hs: Int
    private let storage: UnsafeMutablePointer<Float>
    private let perTensor: Int

    public init(layers: Int, batch B: Int, heads NH: Int, capacity S: Int, headDim hs: Int) {
        self.layers = layers; self.B = B; self.NH = NH; self.S = S; self.hs = hs
        perTensor = B * NH * S * hs
        storage = .allocate(capacity: max(2 * layers * perTensor, 1))
        storage.initialize(repeating: 0, count: max(2 * layers * perTensor, 1))
    }

    deinit { storage.deallocate() }

    /// (K, V) of layer l.
    @inline(__always)
    public func layer(_ l: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        (storage + 2 * l * perTensor, storage + (2 * l + 1) * perTensor)
    }

    /// Bytes held (for memory reporting).
    public var byteCount: Int { 2 * layers * perTensor * 4 }
}
