// SlotSession: the sequences of continuous batching (BatchDecoder). Each of `slots` slots holds one
// sequence with its own length and its own KV cache (SlotKVCache), opened when the sequence joins and
// freed when it leaves. A sequence is prefilled alone — its prompt in chunks, in a pass of its own — while
// the other slots keep their state; a step then advances any set of slots by one token each in one pass,
// every row at its own position and attending only to its own cache.
// A row's numbers depend only on its own tokens: the attention is per row, and the projections see the
// pass as a plain (rows, C) matrix (see BatchDecoder for what that means for bitwise equality).
//   buffers: ForwardPass for max(slots, chunk) rows; lastLogits, passLogits (slots, V)

public final class SlotSession: @unchecked Sendable {
    public let model: OPTModel
    /// Slots; the most tokens one slot may hold (the model's positions); prompt tokens per prefill pass.
    public let slots: Int, capacity: Int, chunk: Int
    /// (slots, V) logits of the last position appended to each slot.
    public let lastLogits: UnsafeMutablePointer<Float>
    /// (slots) tokens for the next `step(slots:)`, indexed by slot; callers write them in place.
    public let stepTokens: UnsafeMutablePointer<Int32>
    /// The slots' caches.
    let cache: SlotKVCache
    let pass: ForwardPass
    /// (slots, V) logits of a step, by pass row, before they go to their slots' rows of lastLogits.
    private let passLogits: UnsafeMutablePointer<Float>

    public init(model: OPTModel, slots: Int, chunk: Int = 256) {
        let cfg = model.config
        self.model = model
        self.slots = max(slots, 1)
        capacity = max(cfg.maxPositionEmbeddings, 1)
        self.chunk = max(1, min(chunk, capacity))
        pass = ForwardPass(config: cfg, rows: max(self.slots, self.chunk), chunk: self.chunk, scoreColumns: capacity)
        pass.attentionInBF16 = model.options.precision == .bf16
        cache = SlotKVCache(
            layers: cfg.numHiddenLayers, slots: self.slots, heads: cfg.numAttentionHeads,
            headDim: cfg.headDim)
        let V = cfg.vocabSize
        lastLogits = .allocate(capacity: self.slots * V); lastLogits.initialize(repeating: 0, count: self.slots * V)
        passLogits = .allocate(capacity: self.slots * V); passLogits.initialize(repeating: 0, count: self.slots * V)
        stepTokens = .allocate(capacity: self.slots); stepTokens.initialize(repeating: 0, count: self.slots)
    }

    deinit {
        lastLogits.deallocate()
        passLogits.deallocate()
        stepTokens.deallocate()
    }

    /// Bytes a session of `slots` slots allocates for `config`, with `openSlots` slots of `capacity` tokens
    /// open. Saturates at Int.max.
    public static func estimatedBytes(
        config cfg: OPTConfig, slots: Int, openSlots: Int = 1, capacity: Int,
        chunk: Int = 256
    ) -> Int {
        let B = max(slots, 1), S = max(cfg.maxPositionEmbeddings, 1), chunk = max(1, min(chunk, S))
        var floats = ForwardPass.floatCount(config: cfg, rows: max(B, chunk), chunk: chunk, scoreColumns: S)
        floats = saturatingSum(floats, saturatingProduct(saturatingProduct(2, B), cfg.vocabSize))
        floats = saturatingSum(floats, kvFloats(config: cfg, sequences: openSlots, capacity: max(capacity, 1)))
        return saturatingProduct(floats, 4)
    }

    /// Closes every slot.
    public func reset() {
        for slot in 0..<slots { cache.close(slot: slot) }
    }

    /// Gives `slot` an empty cache of `capacity` tokens (at most the model's positions).
    func openSlot(_ slot: Int, capacity S: Int) throws {
        guard slot >= 0 && slot < slots else {
            throw EngineError.invalidRequest("slot \(slot) is outside 0..<\(slots)")
        }
        guard S >= 1 && S <= capacity else {
            throw EngineError.invalidRequest("a slot of \(S) tokens does not fit the model's \(capacity) positions")
        }
        cache.open(slot: slot, capacity: S)
    }

    /// Frees `slot` and its cache.
    func closeSlot(_ slot: Int) {
        guard slot >= 0 && slot < slots else { return }
        cache.close(slot: slot)
    }

    /// Tokens held by `slot`.
    public func length(ofSlot slot: Int) -> Int {
        guard slot >= 0 && slot < slots else { return 0 }
        return cache.lengths[slot]
    }

    /// Appends `ids` to `slot` alone (in chunks of `chunk` tokens); the logits of the last one go to row
    /// `slot` of `lastLogits`. `delta` sees batches of one sequence.
    public func prefill(slot: Int, tokens ids: [Int], delta: ProjectionDelta? = nil) throws {
        try checkOpen(slot)
        guard !ids.isEmpty else { throw EngineError.invalidRequest("nothing to prefill") }
        let held = cache.lengths[slot], room = cache.capacities[slot]
        guard held + ids.count <= room else {
            throw EngineError.invalidRequest("\(held + ids.count) tokens exceed the slot's capacity of \(room)")
        }
        let V = model.config.vocabSize
        for id in ids where id < 0 || id >= V {
            throw EngineError.invalidRequest("token id \(id) is outside the vocabulary of \(V)")
        }
        pass.rows = 1
        cache.rowSlots[0] = slot
        var start = 0
        while start < ids.count {
            let t = min(chunk, ids.count - start)
            pass.T = t
            let past = cache.lengths[slot]
            for i in 0..<t {
                pass.tokens[i] = Int32(ids[start + i])
                pass.positions[i] = Int32(past + i)
            }
            model.forwardHidden(pass, attention: cache, delta: delta)
            cache.lengths[slot] += t
            start += t
        }
        let E = model.config.wordEmbedProjDim
        model.logits(
            out: lastLogits + slot * V, hidden: pass.hidden + (pass.T - 1) * E, rows: 1,
            scratch: pass.kernelScratch)
    }

    /// One token for each of `slots` (read from `stepTokens[slot]`) in one pass; each slot's logits go to
    /// its row of `lastLogits`. `delta` sees the pass's rows in the order of `slots`.
    public func step(slots stepped: [Int], delta: ProjectionDelta? = nil) throws {
        guard !stepped.isEmpty else { return }
        guard stepped.count <= slots else {
            throw EngineError.invalidRequest("\(stepped.count) rows for \(slots) slots")
        }
        let V = model.config.vocabSize
        for (i, slot) in stepped.enumerated() {
            try checkOpen(slot)
            guard !stepped[..<i].contains(slot) else { throw EngineError.invalidRequest("slot \(slot) stepped twice") }
            guard cache.lengths[slot] + 1 <= cache.capacities[slot] else {
                throw EngineError.invalidRequest(
                    "slot \(slot) reached its capacity of \(cache.capacities[slot]) tokens")
            }
            let id = stepTokens[slot]
            guard id >= 0 && Int(id) < V else {
                throw EngineError.invalidRequest("token id \(id) is outside the vocabulary of \(V)")
            }
            cache.rowSlots[i] = slot
            pass.tokens[i] = id
            pass.positions[i] = Int32(cache.lengths[slot])
        }
        pass.rows = stepped.count
        pass.T = 1
        model.forwardHidden(pass, attention: cache, delta: delta)
        model.logits(out: passLogits, hidden: pass.hidden, rows: pass.rows, scratch: pass.kernelScratch)
        for (i, slot) in stepped.enumerated() {
            (lastLogits + slot * V).update(from: passLogits + i * V, count: V)
            cache.lengths[slot] += 1
        }
    }

    private func checkOpen(_ slot: Int) throws {
        guard slot >= 0 && slot < slots else {
            throw EngineError.invalidRequest("slot \(slot) is outside 0..<\(slots)")
        }
        guard cache.isOpen(slot) else { throw EngineError.invalidRequest("slot \(slot) is not open") }
    }
}
