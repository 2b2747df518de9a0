// BatchDecoder: continuous batching over one OPTModel. Up to `maxRows` sequences decode together, one
// token per sequence per `step`, each in a slot with its own KV-cache length (a SlotSession).
// Sequences join between steps and leave between steps (when they finish, or by `remove`), so a
// long sequence never holds a short one back. Joining prompts are prefilled about `chunk` tokens per step
// (in pieces of `chunk` tokens, each prompt alone in its slot) before that step's decode pass, so a long
// prompt delays the others by one chunk per step rather than by the whole prompt. Each sequence has its own options — sampling
// settings, seed, limits, stop strings — and its own ProjectionDelta (an adapter, or none): the rows of a
// step are grouped by delta and each group's delta sees only its own rows.
//
// Nothing a sequence computes reads another sequence's state: its prompt is prefilled alone (in the same
// chunks whenever it joins), its attention reads only its own cache, its sampler has its own RNG, and the
// projections of a step (at most `rowInvariantMaxRows` rows) go through matmul's row-invariant kernels,
// which compute every row the same way whatever the other rows are. So a sequence's logits — and its text —
// are bit-identical alone and in any batch; ContinuousBatchTests hold every sequence's tokens (greedy and
// sampled) equal to those it gets alone.
//
//   let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: 16)
//   let slot = try decoder.add(DecodeRequest(promptIds: ids, options: options))
//   while decoder.hasWork { for event in try decoder.step() { … event.output when finished … } }

/// What one step did for one slot.
public struct DecodeEvent: Sendable {
    public let slot: Int
    /// The token generated in this step (nil for a sequence that finished without one: max_new_tokens 0).
    public let token: Int?
    /// Set when the sequence finished in this step; its slot is free again.
    public let output: GenerationOutput?
}

public final class BatchDecoder: @unchecked Sendable {
    public let model: OPTModel
    public let tokenizer: BPETokenizer
    public let maxRows: Int
    let session: SlotSession
    private var sequences: [DecodeSequence?]
    /// Slots whose prompt is still being prefilled, in the order they joined, with the tokens left.
    private var prefilling: [(slot: Int, ids: ArraySlice<Int>)] = []
    private let router = DeltaRouter()
    /// Decode steps run, and the most rows one of them had.
    public private(set) var steps = 0, maxRowsInStep = 0

    public init(model: OPTModel, tokenizer: BPETokenizer, maxRows: Int = 16, chunk: Int = 256) {
        self.model = model
        self.tokenizer = tokenizer
        // Past rowInvariantMaxRows a step's projections would leave the row-invariant kernels and a sequence's
        // text could depend on its neighbours: the batch is capped here, where it is built.
        self.maxRows = min(max(1, maxRows), rowInvariantMaxRows)
        session = SlotSession(model: model, slots: self.maxRows, chunk: chunk)
        sequences = [DecodeSequence?](repeating: nil, count: self.maxRows)
    }

    /// Slots holding a sequence, ascending.
    var activeSlots: [Int] { sequences.indices.filter { sequences[$0] != nil } }
    public var activeCount: Int { sequences.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
    public var freeSlots: Int { maxRows - activeCount }
    public var hasWork: Bool { activeCount > 0 }

    /// Bytes of KV cache the open slots hold.
    public var cacheBytes: Int { session.cache.byteCount }

    /// Bytes of KV cache `request` would take.
    public func cacheBytes(for request: DecodeRequest) -> Int {
        let tokens = min(request.promptIds.count + request.options.maxNewTokens, model.config.maxPositionEmbeddings)
        return session.cache.bytes(capacity: max(tokens, 1))
    }

    /// Puts `request` in a free slot; its prompt is prefilled by the coming steps (a chunk per step), and its
    /// first token comes out of the step that finishes the prompt. Throws when there is no free slot or the
    /// request is invalid (nothing is kept then).
    public func add(_ request: DecodeRequest) throws -> Int {
        try request.options.validate()
        let positions = model.config.maxPositionEmbeddings
        guard !request.promptIds.isEmpty else { throw EngineError.invalidRequest("a prompt has no tokens") }
        guard request.promptIds.count <= positions else {
            throw EngineError.invalidRequest(
                "prompt of \(request.promptIds.count) tokens exceeds the model's \(positions) positions")
        }
        guard let slot = sequences.firstIndex(where: { $0 == nil }) else {
            throw EngineError.invalidRequest("all \(maxRows) rows are busy")
        }
        let vocabulary = model.config.vocabSize
        if let bad = request.promptIds.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw EngineError.invalidRequest("token id \(bad) is outside the vocabulary of \(vocabulary)")
        }
        let sequence = DecodeSequence(request, config: model.config, tokenizer: tokenizer)
        if sequence.finish == nil {
            try session.openSlot(slot, capacity: sequence.capacity)
            prefilling.append((slot, request.promptIds[...]))
        }
        sequences[slot] = sequence
        return slot
    }

    /// True while `slot`'s prompt is not fully prefilled.
    private func isPrefilling(_ slot: Int) -> Bool {
        prefilling.contains { $0.slot == slot }
    }

    /// Prefills the next chunk of the oldest pending prompt.
    private func prefillNextChunk() throws {
        guard let (slot, ids) = prefilling.first else { return }
        let piece = ids.prefix(session.chunk)
        do {
            try session.prefill(slot: slot, tokens: Array(piece), delta: sequences[slot]?.delta)
        } catch {
            prefilling.removeFirst()
            sequences[slot] = nil
            session.closeSlot(slot)
            throw error
        }
        if piece.count == ids.count {
            prefilling.removeFirst()
        } else {
            prefilling[0].ids = ids.dropFirst(piece.count)
        }
    }

    /// Takes `slot`'s sequence out before it finished (cancellation); returns what it had produced.
    @discardableResult
    public func remove(_ slot: Int) -> GenerationOutput? {
        guard slot >= 0 && slot < maxRows, var sequence = sequences[slot] else { return nil }
        sequence.cancel()
        sequences[slot] = nil
        prefilling.removeAll { $0.slot == slot }
        session.closeSlot(slot)
        return sequence.output
    }

    /// What `slot`'s sequence has produced so far.
    public func output(ofSlot slot: Int) -> GenerationOutput? {
        guard slot >= 0 && slot < maxRows else { return nil }
        return sequences[slot]?.output
    }

    /// Prefills about a chunk of joining prompts, then one token for every sequence whose prompt is in: samples
    /// from each slot's logits, frees the slots that finished, and runs the others' new tokens through the
    /// model in one pass (ready for the next step).
    public func step() throws -> [DecodeEvent] {
        let V = model.config.vocabSize
        // Up to about `chunk` prompt tokens per step, in whole pieces (a prompt is always cut at the same places,
        // whenever it joins): several short prompts join in one step, a long one takes several.
        var budget = session.chunk
        while budget > 0, let pending = prefilling.first {
            budget -= min(pending.ids.count, session.chunk)
            try prefillNextChunk()
        }
        var events: [DecodeEvent] = []
        var next: [Int] = []
        for slot in 0..<maxRows {
            guard var sequence = sequences[slot], !isPrefilling(slot) else { continue }
            var token: Int?
            if sequence.finish == nil {
                let id = sequence.accept(logits: session.lastLogits + slot * V, count: V)
                token = id
                session.stepTokens[slot] = Int32(id)
            }
            if sequence.finish != nil {
                events.append(DecodeEvent(slot: slot, token: token, output: sequence.output))
                sequences[slot] = nil
                session.closeSlot(slot)
            } else {
                events.append(DecodeEvent(slot: slot, token: token, output: nil))
                sequences[slot] = sequence
                next.append(slot)
            }
        }
        guard !next.isEmpty else { return events }
        let order = groupedByDelta(next)
        steps += 1
        maxRowsInStep = max(maxRowsInStep, order.count)
        do {
            try session.step(slots: order, delta: router.isEmpty ? nil : router)
        } catch {
            // a failed pass leaves the caches of these slots unusable
            for slot in order { sequences[slot] = nil; session.closeSlot(slot) }
            throw error
        }
        return events
    }

    /// `slots` reordered so that sequences sharing a delta are neighbours (one run each), with the router set
    /// to those runs.
    private func groupedByDelta(_ slots: [Int]) -> [Int] {
        var groups: [(delta: ProjectionDelta?, slots: [Int])] = []
        for slot in slots {
            let delta = sequences[slot]?.delta
            if let i = groups.firstIndex(where: { $0.delta === delta }) {
                groups[i].slots.append(slot)
            } else {
                groups.append((delta, [slot]))
            }
        }
        router.runs.removeAll(keepingCapacity: true)
        var order: [Int] = []
        for group in groups {
            if let delta = group.delta { router.runs.append((order.count, group.slots.count, delta)) }
            order += group.slots
        }
        return order
    }
}

/// The delta of a step: hands each run of neighbouring rows to the delta of its sequences.
final class DeltaRouter: ProjectionDelta {
    var runs: [(start: Int, count: Int, delta: ProjectionDelta)] = []
    var isEmpty: Bool { runs.isEmpty }

    func addDelta(
        layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, inDim K: Int,
        out: UnsafeMutablePointer<Float>, outDim N: Int, batch B: Int, rowsPerSequence T: Int
    ) {
        for run in runs {
            run.delta.addDelta(
                layer: layer, module: module, inp: inp + run.start * T * K, inDim: K,
                out: out + run.start * T * N, outDim: N, batch: run.count, rowsPerSequence: T)
        }
    }
}
