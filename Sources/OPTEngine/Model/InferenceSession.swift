// InferenceSession: the state of one batch of B sequences being run through an OPTModel — its KV cache
// and every activation buffer, allocated once at creation. Prompts go in through `append` (in chunks of
// at most `chunk` tokens, so long prompts use bounded memory); decode steps go through `step`, which
// allocates nothing.
//   buffers: x, xn, q, k, v, att, tmp (B·chunk, C)   emb, hidden (B·chunk, E)   ffn (B·chunk, F)
//            scores (chunk, S)   keyMask (B, S)   lastLogits (B, V)

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
    public let B: Int, capacity: Int, chunk: Int
    public private(set) var past = 0
    private(set) var T = 0
    let cache: KVCache
    let kernelScratch: KernelScratch
    let tokens: UnsafeMutablePointer<Int32>, positions: UnsafeMutablePointer<Int32>
    let keyMask: UnsafeMutablePointer<UInt8>
    let x, xn, q, k, v, att, tmp, emb, hidden, ffn, scores: UnsafeMutablePointer<Float>
    /// (B, V) logits of the last position appended for each sequence.
    public let lastLogits: UnsafeMutablePointer<Float>
    /// (B) tokens for the next `step`; callers write them in place.
    public let stepTokens: UnsafeMutablePointer<Int32>
    private var validCount: [Int32]
    private var allocations: [UnsafeMutableRawPointer] = []
    private static let logitRows = 16
    private let logitBlock: UnsafeMutablePointer<Float>

    public init(model: OPTModel, batch B: Int, capacity S: Int, chunk: Int = 256) {
        let cfg = model.config
        self.model = model
        self.B = max(B, 1); self.capacity = max(S, 1); self.chunk = max(1, min(chunk, S))
        let R = self.B * self.chunk, C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim, V = cfg.vocabSize
        cache = KVCache(layers: cfg.numHiddenLayers, batch: self.B, heads: cfg.numAttentionHeads, capacity: self.capacity,
                        headDim: cfg.headDim)
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
        logitBlock = floats(InferenceSession.logitRows * V)
        tokens = .allocate(capacity: R); tokens.initialize(repeating: 0, count: R)
        positions = .allocate(capacity: R); positions.initialize(repeating: 0, count: R)
        stepTokens = .allocate(capacity: self.B); stepTokens.initialize(repeating: 0, count: self.B)
        keyMask = .allocate(capacity: self.B * self.capacity); keyMask.initialize(repeating: 0, count: self.B * self.capacity)
        allocs += [UnsafeMutableRawPointer(tokens), UnsafeMutableRawPointer(positions),
                   UnsafeMutableRawPointer(stepTokens), UnsafeMutableRawPointer(keyMask)]
        allocations = allocs
        validCount = [Int32](repeating: 0, count: self.B)
    }

    deinit { for p in allocations { p.deallocate() } }

    /// Forgets every token; the buffers are kept for the next batch.
    public func reset() {
        past = 0
        for b in 0..<B { validCount[b] = 0 }
    }

    /// Appends tokens (B rows of equal length) with their mask (1 real, 0 padding; default all 1).
    public func append(tokens rows: [[Int]], mask: [[Int]]? = nil, delta: ProjectionDelta? = nil,
                       logits: LogitsRequest = .last) throws {
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
