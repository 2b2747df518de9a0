// InferenceSession in slot mode: the entry points of continuous batching. Each slot holds one sequence
// with its own length and its own KV cache (SlotKVCache). A sequence is prefilled alone — its prompt in
// chunks, in a pass of its own — while the other slots keep their state; a step then advances any set of
// slots by one token each in one pass, every row at its own position and attending only to its own cache.
// A row's numbers depend only on its own tokens: the attention is per row, and the projections see the
// pass as a plain (rows, C) matrix (see BatchDecoder for what that means for bitwise equality).

extension InferenceSession {
    /// Gives `slot` an empty cache of `capacity` tokens (at most the model's positions).
    public func openSlot(_ slot: Int, capacity S: Int) throws {
        guard let slotCache else { throw EngineError.invalidRequest("openSlot needs a session made with slots:") }
        guard slot >= 0 && slot < B else { throw EngineError.invalidRequest("slot \(slot) is outside 0..<\(B)") }
        guard S >= 1 && S <= capacity else {
            throw EngineError.invalidRequest("a slot of \(S) tokens does not fit the model's \(capacity) positions")
        }
        slotCache.open(slot: slot, capacity: S)
    }

    /// Frees `slot` and its cache.
    public func closeSlot(_ slot: Int) {
        guard let slotCache, slot >= 0 && slot < B else { return }
        slotCache.close(slot: slot)
    }

    /// Tokens held by `slot`.
    public func length(ofSlot slot: Int) -> Int {
        guard let slotCache, slot >= 0 && slot < B else { return 0 }
        return slotCache.lengths[slot]
    }

    /// Appends `ids` to `slot` alone (in chunks of `chunk` tokens); the logits of the last one go to row
    /// `slot` of `lastLogits`. `delta` sees batches of one sequence.
    public func prefill(slot: Int, tokens ids: [Int], delta: ProjectionDelta? = nil) throws {
        let slotCache = try openSlotCache(slot)
        guard !ids.isEmpty else { throw EngineError.invalidRequest("nothing to prefill") }
        let held = slotCache.lengths[slot], room = slotCache.capacities[slot]
        guard held + ids.count <= room else {
            throw EngineError.invalidRequest("\(held + ids.count) tokens exceed the slot's capacity of \(room)")
        }
        let V = model.config.vocabSize
        for id in ids where id < 0 || id >= V {
            throw EngineError.invalidRequest("token id \(id) is outside the vocabulary of \(V)")
        }
        rows = 1
        passSlots[0] = slot
        var start = 0
        while start < ids.count {
            let t = min(chunk, ids.count - start)
            T = t
            let past = slotCache.lengths[slot]
            for i in 0..<t {
                tokens[i] = Int32(ids[start + i])
                positions[i] = Int32(past + i)
            }
            model.forwardHidden(self, delta: delta)
            slotCache.lengths[slot] += t
            start += t
        }
        let E = model.config.wordEmbedProjDim
        model.logits(out: lastLogits + slot * V, hidden: hidden + (T - 1) * E, rows: 1, scratch: kernelScratch)
    }

    /// One token for each of `slots` (read from `stepTokens[slot]`) in one pass; each slot's logits go to
    /// its row of `lastLogits`. `delta` sees the pass's rows in the order of `slots`.
    public func step(slots: [Int], delta: ProjectionDelta? = nil) throws {
        guard let passLogits else { throw EngineError.invalidRequest("step(slots:) needs a session made with slots:") }
        guard !slots.isEmpty else { return }
        guard slots.count <= B else { throw EngineError.invalidRequest("\(slots.count) rows for \(B) slots") }
        let V = model.config.vocabSize
        for (i, slot) in slots.enumerated() {
            let slotCache = try openSlotCache(slot)
            guard !slots[..<i].contains(slot) else { throw EngineError.invalidRequest("slot \(slot) stepped twice") }
            guard slotCache.lengths[slot] + 1 <= slotCache.capacities[slot] else {
                throw EngineError.invalidRequest("slot \(slot) reached its capacity of \(slotCache.capacities[slot]) tokens")
            }
            let id = stepTokens[slot]
            guard id >= 0 && Int(id) < V else {
                throw EngineError.invalidRequest("token id \(id) is outside the vocabulary of \(V)")
            }
            passSlots[i] = slot
            tokens[i] = id
            positions[i] = Int32(slotCache.lengths[slot])
        }
        rows = slots.count
        T = 1
        model.forwardHidden(self, delta: delta)
        model.logits(out: passLogits, hidden: hidden, rows: rows, scratch: kernelScratch)
        for (i, slot) in slots.enumerated() {
            (lastLogits + slot * V).update(from: passLogits + i * V, count: V)
            slotCache?.lengths[slot] += 1
        }
    }

    private func openSlotCache(_ slot: Int) throws -> SlotKVCache {
        guard let slotCache else { throw EngineError.invalidRequest("slot calls need a session made with slots:") }
        guard slot >= 0 && slot < B else { throw EngineError.invalidRequest("slot \(slot) is outside 0..<\(B)") }
        guard slotCache.isOpen(slot) else { throw EngineError.invalidRequest("slot \(slot) is not open") }
        return slotCache
    }
}
