// BatchDecoder: continuous batching over one OPTModel. Up to `maxRows` sequences decode together, one
// token per sequence per `step`, each in a slot with its own KV-cache length (an InferenceSession in slot
// mode). Sequences join between steps (`add` prefills the prompt into a free slot while the others wait)
// and leave between steps (when they finish, or by `remove`), so a long sequence never holds a short one
// back. Each sequence has its own options — sampling settings, seed, limits, stop strings — and its own
// ProjectionDelta (an adapter, or none): the rows of a step are grouped by delta and each group's delta
// sees only its own rows.
//
// Nothing a sequence computes reads another sequence's state: its prompt is prefilled alone, its attention
// reads only its own cache, its sampler has its own RNG. The projections of a step are one (rows, K) matrix
// product; OpenBLAS's sgemm computes every row the same way whatever the row count, so a row's logits are
// bit-identical in any batch of two or more rows. A step of a single row goes through sgemv (and narrow
// weights through a fused kernel for one or two rows), which sums in another order: last-bit differences
// (≤ 2e-5 on the fixtures), which change a token only if two logits tie to within them. ContinuousBatchTests
// hold every sequence's tokens (greedy and sampled) equal to those it gets alone.
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
    let session: InferenceSession
    private var sequences: [DecodeSequence?]
    private let router = DeltaRouter()
    /// Decode steps run, and the most rows one of them had.
    public private(set) var steps = 0, maxRowsInStep = 0

    public init(model: OPTModel, tokenizer: BPETokenizer, maxRows: Int = 16, chunk: Int = 256) {
        self.model = model
        self.tokenizer = tokenizer
        self.maxRows = max(1, maxRows)
        session = InferenceSession(model: model, slots: self.maxRows, chunk: chunk)
        sequences = [DecodeSequence?](repeating: nil, count: self.maxRows)
    }

    /// Slots holding a sequence, ascending.
    public var activeSlots: [Int] { sequences.indices.filter { sequences[$0] != nil } }
    public var activeCount: Int { sequences.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
    public var freeSlots: Int { maxRows - activeCount }
    public var hasWork: Bool { activeCount > 0 }

    /// Bytes of KV cache the open slots hold.
    public var cacheBytes: Int { session.slotCache?.byteCount ?? 0 }

    /// Bytes of KV cache `request` would take.
    public func cacheBytes(for request: DecodeRequest) -> Int {
        let tokens = min(request.promptIds.count + request.options.maxNewTokens, model.config.maxPositionEmbeddings)
        return session.slotCache?.bytes(capacity: max(tokens, 1)) ?? 0
    }

    /// Puts `request` in a free slot and prefills its prompt; its first token comes out of the next `step`.
    /// Throws when there is no free slot or the request is invalid (nothing is kept then).
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
        let sequence = DecodeSequence(request, config: model.config, tokenizer: tokenizer)
        if sequence.finish == nil {
            try session.openSlot(slot, capacity: sequence.capacity)
            do {
                try session.prefill(slot: slot, tokens: request.promptIds, delta: request.delta)
            } catch {
                session.closeSlot(slot)
                throw error
            }
        }
        sequences[slot] = sequence
        return slot
    }

    /// Takes `slot`'s sequence out before it finished (cancellation); returns what it had produced.
    @discardableResult
    public func remove(_ slot: Int) -> GenerationOutput? {
        guard slot >= 0 && slot < maxRows, var sequence = sequences[slot] else { return nil }
        sequence.cancel()
        sequences[slot] = nil
        session.closeSlot(slot)
        return sequence.output
    }

    /// What `slot`'s sequence has produced so far.
    public func output(ofSlot slot: Int) -> GenerationOutput? {
        guard slot >= 0 && slot < maxRows else { return nil }
        return sequences[slot]?.output
    }

    /// One token for every active sequence: samples from each slot's logits, frees the slots that finished,
    /// and runs the others' new tokens through the model in one pass (ready for the next step).
    public func step() throws -> [DecodeEvent] {
        let V = model.config.vocabSize
        var events: [DecodeEvent] = []
        var next: [Int] = []
        for slot in 0..<maxRows {
            guard var sequence = sequences[slot] else { continue }
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

    func addDelta(layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, inDim K: Int,
                  out: UnsafeMutablePointer<Float>, outDim N: Int, batch B: Int, rowsPerSequence T: Int) {
        for run in runs {
            run.delta.addDelta(layer: layer, module: module, inp: inp + run.start * T * K, inDim: K,
                               out: out + run.start * T * N, outDim: N, batch: run.count, rowsPerSequence: T)
        }
    }
}
