// KVCache: keys and values of every layer for the sequences of a session, and the attention over them
// (each cache is the PassAttention a session hands to OPTModel.forwardHidden).
//   KVCache     — a batch of B sequences that advance together (one shared length, BatchSession):
//                 per layer K, V (B, NH, S, hs) F32 — one allocation for the whole cache, sliced by layer;
//                 keyMask (B, S): 1 where a cached position holds a real token, 0 for padding.
//   SlotKVCache — continuous batching: each slot holds one sequence with its own length and its own
//                 allocation, sized to what that sequence needs, made when it joins and freed when it leaves:
//                 per slot, per layer K, V (NH, S_slot, hs) F32 (SlotSession).

final class KVCache: @unchecked Sendable {
    let layers: Int, B: Int, NH: Int, S: Int, hs: Int
    /// Positions cached so far, shared by every sequence.
    var length = 0
    /// (B, S): whether position s of sequence b holds a real token (written by the session per chunk).
    let keyMask: UnsafeMutablePointer<UInt8>
    private let storage: UnsafeMutablePointer<Float>
    private let perTensor: Int

    init(layers: Int, batch B: Int, heads NH: Int, capacity S: Int, headDim hs: Int) {
        self.layers = layers; self.B = B; self.NH = NH; self.S = S; self.hs = hs
        perTensor = B * NH * S * hs
        storage = .allocate(capacity: max(2 * layers * perTensor, 1))
        storage.initialize(repeating: 0, count: max(2 * layers * perTensor, 1))
        keyMask = .allocate(capacity: max(B * S, 1))
        keyMask.initialize(repeating: 0, count: max(B * S, 1))
    }

    deinit { storage.deallocate(); keyMask.deallocate() }

    /// (K, V) of layer l.
    @inline(__always)
    func layer(_ l: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        (storage + 2 * l * perTensor, storage + (2 * l + 1) * perTensor)
    }

    /// Bytes held (for memory reporting).
    var byteCount: Int { 2 * layers * perTensor * 4 + B * S }
}

extension KVCache: PassAttention {
    /// The pass's B sequences × T tokens go to positions length… of every sequence.
    func attend(layer l: Int, pass: ForwardPass) {
        let (ck, cv) = layer(l)
        let shape = AttentionShape(
            B: pass.rows, T: pass.T, NH: NH, hs: hs, past: length, capacity: S, bf16: pass.attentionInBF16)
        attentionForward(
            out: pass.att, q: pass.q, k: pass.k, v: pass.v, cacheK: ck, cacheV: cv, keyMask: keyMask,
            scores: pass.scores, scoreFloats: pass.scoreFloats, shape: shape)
    }
}

final class SlotKVCache: @unchecked Sendable {
    let layers: Int, slots: Int, NH: Int, hs: Int
    /// Per slot: K/V of every layer, (layers, 2, NH, S_slot, hs); nil while the slot is free.
    private var storage: [UnsafeMutablePointer<Float>?]
    /// Per slot: S_slot, the tokens it can hold (0 while free).
    private(set) var capacities: [Int]
    /// Per slot: tokens cached so far.
    var lengths: [Int]
    /// The slot of each row of the pass being run (written by the session), and the rows' attention views.
    let rowSlots: UnsafeMutablePointer<Int>
    private let attentionRows: UnsafeMutablePointer<AttentionRow>

    init(layers: Int, slots: Int, heads NH: Int, headDim hs: Int) {
        self.layers = layers; self.slots = slots; self.NH = NH; self.hs = hs
        storage = [UnsafeMutablePointer<Float>?](repeating: nil, count: slots)
        capacities = [Int](repeating: 0, count: slots)
        lengths = [Int](repeating: 0, count: slots)
        rowSlots = .allocate(capacity: max(slots, 1))
        rowSlots.initialize(repeating: 0, count: max(slots, 1))
        attentionRows = .allocate(capacity: max(slots, 1))
    }

    deinit {
        for p in storage { p?.deallocate() }
        rowSlots.deallocate()
        attentionRows.deallocate()
    }

    /// Bytes a slot of `capacity` tokens takes.
    func bytes(capacity S: Int) -> Int { 2 * layers * NH * S * hs * 4 }

    /// Gives `slot` room for `capacity` tokens (dropping whatever it held) and sets its length to 0.
    func open(slot: Int, capacity S: Int) {
        precondition(slot >= 0 && slot < slots, "slot \(slot) out of 0..<\(slots)")
        let S = max(S, 1)
        if capacities[slot] != S {
            storage[slot]?.deallocate()
            // Not zeroed: a slot only ever reads the positions it has written.
            storage[slot] = .allocate(capacity: 2 * layers * NH * S * hs)
            capacities[slot] = S
        }
        lengths[slot] = 0
    }

    /// Frees the memory of `slot`.
    func close(slot: Int) {
        precondition(slot >= 0 && slot < slots, "slot \(slot) out of 0..<\(slots)")
        storage[slot]?.deallocate()
        storage[slot] = nil
        capacities[slot] = 0
        lengths[slot] = 0
    }

    func isOpen(_ slot: Int) -> Bool { storage[slot] != nil }

    /// (K, V) of layer l for `slot`, each (NH, S_slot, hs).
    @inline(__always)
    func layer(_ l: Int, slot: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        guard let base = storage[slot] else { preconditionFailure("slot \(slot) is not open") }
        let perTensor = NH * capacities[slot] * hs
        return (base + 2 * l * perTensor, base + (2 * l + 1) * perTensor)
    }

    /// Bytes held by open slots.
    var byteCount: Int { capacities.reduce(0) { $0 + bytes(capacity: $1) } }
}

extension SlotKVCache: PassAttention {
    /// Row i of the pass (T tokens) goes to positions lengths[rowSlots[i]]… of its own slot.
    func attend(layer l: Int, pass: ForwardPass) {
        for i in 0..<pass.rows {
            let slot = rowSlots[i]
            let (ck, cv) = layer(l, slot: slot)
            attentionRows[i] = AttentionRow(cacheK: ck, cacheV: cv, capacity: capacities[slot], past: lengths[slot])
        }
        attentionForwardRows(
            out: pass.att, q: pass.q, k: pass.k, v: pass.v, rows: attentionRows, scores: pass.scores,
            scoreFloats: pass.scoreFloats, B: pass.rows, T: pass.T, NH: NH, hs: hs, bf16: pass.attentionInBF16)
    }
}
