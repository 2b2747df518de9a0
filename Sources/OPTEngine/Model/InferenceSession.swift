// InferenceSession: the state of the sequences being run through an OPTModel — KV cache and every
// activation buffer, allocated once at creation. Two modes:
//   batch mode (init(model:batch:capacity:)): B sequences advance together with one shared length. Prompts
//     go in through `append` (in chunks of at most `chunk` tokens, so long prompts use bounded memory);
//     decode steps go through `step`, which allocates nothing. Generator and Scorer use this mode.
//   slot mode (init(model:slots:)): B slots, each holding one sequence with its own length and its own
//     cache (SlotKVCache), for continuous batching: `prefill(slot:)` runs one sequence's prompt while the
//     others wait, `step(slots:)` advances any subset of slots by one token in one pass (BatchDecoder).
//   buffers: x, xn, q, k, v, att, tmp (R, C)   emb, hidden (R, E)   ffn (R, F)   R = rows per pass
//            scores (chunk, S)   keyMask (B, S)   lastLogits (B, V)   (slot mode) passLogits (B, V)

public enum LogitsRequest {
    case none
    /// Logits of each sequence's last appended position into `lastLogits`.
    case last
    /// Every appended position's logits, handed over one row at a time: (sequence b, index t among the
    /// appended tokens, logits (V)).
    case all((Int, Int, UnsafePointer<Float>) -> Void)
}

public final class InferenceSession: @unchecked Sendable {
    public let model: OPTModel
    /// Sequences (batch mode) or slots (slot mode); `capacity` is the tokens per sequence (slot mode: the
    /// model's positions, the most any slot may hold).
    public let B: Int, capacity: Int, chunk: Int
    /// Batch mode: tokens appended so far, shared by every sequence.
    public internal(set) var past = 0
    /// New tokens per sequence in the pass being run.
    internal(set) var T = 0
    /// Sequences in the pass being run: B in batch mode; 1 for a slot prefill, the stepped slots in a slot step.
    internal(set) var rows = 0
    /// Batch mode's cache (nil in slot mode).
    let cache: KVCache?
    /// Slot mode's cache (nil in batch mode).
    public let slotCache: SlotKVCache?
    let kernelScratch: KernelScratch
    let tokens: UnsafeMutablePointer<Int32>, positions: UnsafeMutablePointer<Int32>
    let keyMask: UnsafeMutablePointer<UInt8>
    let x, xn, q, k, v, att, tmp, emb, hidden, ffn, scores: UnsafeMutablePointer<Float>
    /// (B, V) logits of the last position appended for each sequence (slot mode: for each slot).
    public let lastLogits: UnsafeMutablePointer<Float>
    /// (B) tokens for the next `step`; callers write them in place (slot mode: indexed by slot).
    public let stepTokens: UnsafeMutablePointer<Int32>
    /// Slot mode: the cache slot of each row of the pass, and the rows' attention views for one layer.
    let passSlots: UnsafeMutablePointer<Int>, attentionRows: UnsafeMutablePointer<AttentionRow>
    /// Slot mode: (B, V) logits of a step, by pass row, before they go to their slots' rows of lastLogits.
    let passLogits: UnsafeMutablePointer<Float>?
    private var validCount: [Int32]
    private var allocations: [UnsafeMutableRawPointer] = []
    private static let logitRows = 16
    private let logitBlock: UnsafeMutablePointer<Float>

    /// Batch mode: B sequences of up to S tokens each, advancing together.
    public convenience init(model: OPTModel, batch B: Int, capacity S: Int, chunk: Int = 256) {
        self.init(model: model, sequences: B, capacity: S, chunk: chunk, slotted: false)
    }

    /// Slot mode: up to `slots` sequences of different lengths (each up to the model's positions).
    public convenience init(model: OPTModel, slots: Int, chunk: Int = 256) {
        self.init(model: model, sequences: slots, capacity: model.config.maxPositionEmbeddings, chunk: chunk,
                  slotted: true)
    }

    private init(model: OPTModel, sequences B: Int, capacity S: Int, chunk: Int, slotted: Bool) {
        let cfg = model.config
        self.model = model
        self.B = max(B, 1); self.capacity = max(S, 1); self.chunk = max(1, min(chunk, self.capacity))
        // batch mode runs B·chunk rows at once; slot mode one sequence's chunk, or one token of each slot
        let R = slotted ? max(self.B, self.chunk) : self.B * self.chunk
        let C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim, V = cfg.vocabSize
        if slotted {
            cache = nil
            slotCache = SlotKVCache(layers: cfg.numHiddenLayers, slots: self.B, heads: cfg.numAttentionHeads,
                                    headDim: cfg.headDim)
        } else {
            cache = KVCache(layers: cfg.numHiddenLayers, batch: self.B, heads: cfg.numAttentionHeads,
                            capacity: self.capacity, headDim: cfg.headDim)
            slotCache = nil
        }
        kernelScratch = KernelScratch(maxInputDim: max(C, E, F))
        var allocs: [UnsafeMutableRawPointer] = []
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            allocs.append(UnsafeMutableRawPointer(p))
            return p
        }
        x = floats(R * C); xn = floats(R * C); q = floats(R * C); k = floats(R * C); v = floats(R * C)
        att = floats(R * C); tmp = floats(R * C); emb = floats(R * E); hidden = floats(R * E); ffn = floats(R * F)
        scores = floats(self.chunk * self.capacity)
        lastLogits = floats(self.B * V)
        passLogits = slotted ? floats(self.B * V) : nil
        logitBlock = floats(InferenceSession.logitRows * V)
        tokens = .allocate(capacity: R); tokens.initialize(repeating: 0, count: R)
        positions = .allocate(capacity: R); positions.initialize(repeating: 0, count: R)
        stepTokens = .allocate(capacity: self.B); stepTokens.initialize(repeating: 0, count: self.B)
        let maskCount = slotted ? 1 : self.B * self.capacity
        keyMask = .allocate(capacity: maskCount); keyMask.initialize(repeating: 0, count: maskCount)
        passSlots = .allocate(capacity: self.B); passSlots.initialize(repeating: 0, count: self.B)
        attentionRows = .allocate(capacity: self.B)
        allocs += [UnsafeMutableRawPointer(tokens), UnsafeMutableRawPointer(positions),
                   UnsafeMutableRawPointer(stepTokens), UnsafeMutableRawPointer(keyMask),
                   UnsafeMutableRawPointer(passSlots), UnsafeMutableRawPointer(attentionRows)]
        allocations = allocs
        validCount = [Int32](repeating: 0, count: self.B)
        rows = self.B
    }

    deinit { for p in allocations { p.deallocate() } }

    public var isSlotted: Bool { slotCache != nil }

    /// Forgets every token; the buffers are kept for the next batch.
    public func reset() {
        past = 0
        for b in 0..<B { validCount[b] = 0 }
        if let slotCache { for b in 0..<B { slotCache.close(slot: b) } }
    }

    /// Appends tokens (B rows of equal length) with their mask (1 real, 0 padding; default all 1).
    public func append(tokens rows: [[Int]], mask: [[Int]]? = nil, delta: ProjectionDelta? = nil,
                       logits: LogitsRequest = .last) throws {
        guard !isSlotted else { throw EngineError.invalidRequest("a slot session takes prefill(slot:) and step(slots:)") }
        guard rows.count == B else { throw EngineError.invalidRequest("expected \(B) sequences, got \(rows.count)") }
        let n = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == n }) else { throw EngineError.invalidRequest("rows have different lengths") }
        guard past + n <= capacity else {
            throw EngineError.invalidRequest("\(past + n) tokens exceed the session capacity of \(capacity)")
        }
        guard past + n <= model.config.maxPositionEmbeddings else {
            throw EngineError.invalidRequest(
                "\(past + n) tokens exceed the model's \(model.config.maxPositionEmbeddings) positions")
        }
        let V = model.config.vocabSize
        for row in rows { for id in row where id < 0 || id >= V {
            throw EngineError.invalidRequest("token id \(id) is outside the vocabulary of \(V)")
        } }
        var start = 0
        while start < n {
            let t = min(chunk, n - start)
            T = t
            for b in 0..<B {
                for i in 0..<t {
                    let real = (mask?[b][start + i] ?? 1) != 0
                    tokens[b * t + i] = Int32(rows[b][start + i])
                    keyMask[b * capacity + past + i] = real ? 1 : 0
                    positions[b * t + i] = real ? validCount[b] : -1
                    if real { validCount[b] += 1 }
                }
            }
            model.forwardHidden(self, delta: delta)
            emitLogits(logits, offset: start, isLastChunk: start + t == n)
            past += t
            start += t
        }
    }

    /// One decode step: `stepTokens` (B) already written; every sequence gets one real token.
    /// Leaves the logits in `lastLogits`.
    public func step(delta: ProjectionDelta? = nil) throws {
        guard !isSlotted else { throw EngineError.invalidRequest("a slot session takes prefill(slot:) and step(slots:)") }
        guard past + 1 <= capacity, past + 1 <= model.config.maxPositionEmbeddings else {
            throw EngineError.invalidRequest("sequence reached the limit of \(min(capacity, model.config.maxPositionEmbeddings)) tokens")
        }
        T = 1
        for b in 0..<B {
            tokens[b] = stepTokens[b]
            keyMask[b * capacity + past] = 1
            positions[b] = validCount[b]
            validCount[b] += 1
        }
        model.forwardHidden(self, delta: delta)
        model.logits(out: lastLogits, hidden: hidden, rows: B, scratch: kernelScratch)
        past += 1
    }

    /// Attention of layer l for the pass being run: over the shared cache (batch mode) or each row's own
    /// slot (slot mode).
    func attend(layer l: Int, shape: AttentionShape) {
        if let slotCache {
            for i in 0..<rows {
                let slot = passSlots[i]
                let (ck, cv) = slotCache.layer(l, slot: slot)
                attentionRows[i] = AttentionRow(cacheK: ck, cacheV: cv, capacity: slotCache.capacities[slot],
                                                past: slotCache.lengths[slot])
            }
            attentionForwardRows(out: att, q: q, k: k, v: v, rows: attentionRows, scores: scores, B: rows, T: T,
                                 NH: shape.NH, hs: shape.hs)
        } else if let cache {
            let (ck, cv) = cache.layer(l)
            attentionForward(out: att, q: q, k: k, v: v, cacheK: ck, cacheV: cv, keyMask: keyMask, scores: scores,
                             shape: shape)
        }
    }

    private func emitLogits(_ request: LogitsRequest, offset: Int, isLastChunk: Bool) {
        let E = model.config.wordEmbedProjDim, V = model.config.vocabSize
        switch request {
        case .none:
            break
        case .last:
            guard isLastChunk else { return }
            for b in 0..<B {
                model.logits(out: lastLogits + b * V, hidden: hidden + (b * T + T - 1) * E, rows: 1, scratch: kernelScratch)
            }
        case .all(let body):
            let rows = InferenceSession.logitRows
            for b in 0..<B {
                var t0 = 0
                while t0 < T {
                    let nr = min(rows, T - t0)
                    model.logits(out: logitBlock, hidden: hidden + (b * T + t0) * E, rows: nr, scratch: kernelScratch)
                    for r in 0..<nr { body(b, offset + t0 + r, logitBlock + r * V) }
                    if isLastChunk && t0 + nr == T { (lastLogits + b * V).update(from: logitBlock + (nr - 1) * V, count: V) }
                    t0 += nr
                }
            }
        }
    }
}
