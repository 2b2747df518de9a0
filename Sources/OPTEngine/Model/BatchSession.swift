// BatchSession: B sequences run through an OPTModel together, with one shared length — prompts scored
// (Scorer, evaluation) or a fixed batch decoded (bench). Prompts go in through `append`, in chunks of at
// most `chunk` tokens so long prompts use bounded memory; decode steps go through `step`, which allocates
// nothing. Padding is a mask: a padded position takes no position id and no sequence attends to it.
// Sequences of their own lengths that join and leave (continuous batching) are SlotSession's job.
//   buffers: ForwardPass for B·chunk rows; KVCache (B, S); lastLogits (B, V); logitBlock (16, V)

public enum LogitsRequest {
    case none
    /// Logits of each sequence's last appended position into `lastLogits`.
    case last
    /// Every appended position's logits, handed over one row at a time: (sequence b, index t among the
    /// appended tokens, logits (V)).
    case all((Int, Int, UnsafePointer<Float>) -> Void)
}

public final class BatchSession: @unchecked Sendable {
    public let model: OPTModel
    /// Sequences, tokens per sequence, and the most tokens per sequence in one pass.
    public let B: Int, capacity: Int, chunk: Int
    /// Tokens appended so far, shared by every sequence.
    public var past: Int { cache.length }
    /// (B, V) logits of the last position appended for each sequence.
    public let lastLogits: UnsafeMutablePointer<Float>
    /// (B) tokens for the next `step`; callers write them in place.
    public let stepTokens: UnsafeMutablePointer<Int32>
    let pass: ForwardPass
    let cache: KVCache
    /// Real tokens so far per sequence: the position id of its next real token.
    private var validCount: [Int32]
    private static let logitRows = 16
    private let logitBlock: UnsafeMutablePointer<Float>

    /// B sequences of up to S tokens each, advancing together.
    public init(model: OPTModel, batch B: Int, capacity S: Int, chunk: Int = 256) {
        let cfg = model.config
        self.model = model
        self.B = max(B, 1); self.capacity = max(S, 1); self.chunk = max(1, min(chunk, self.capacity))
        pass = ForwardPass(config: cfg, rows: self.B * self.chunk, chunk: self.chunk, scoreColumns: self.capacity)
        pass.attentionInBF16 = model.options.precision == .bf16
        cache = KVCache(
            layers: cfg.numHiddenLayers, batch: self.B, heads: cfg.numAttentionHeads,
            capacity: self.capacity, headDim: cfg.headDim)
        let V = cfg.vocabSize
        lastLogits = .allocate(capacity: self.B * V); lastLogits.initialize(repeating: 0, count: self.B * V)
        logitBlock = .allocate(capacity: Self.logitRows * V);
        logitBlock.initialize(repeating: 0, count: Self.logitRows * V)
        stepTokens = .allocate(capacity: self.B); stepTokens.initialize(repeating: 0, count: self.B)
        validCount = [Int32](repeating: 0, count: self.B)
    }

    deinit {
        lastLogits.deallocate()
        logitBlock.deallocate()
        stepTokens.deallocate()
    }

    /// Bytes a session of `batch` sequences of `capacity` tokens allocates for `config`, KV cache and key
    /// mask included. Saturates at Int.max.
    public static func estimatedBytes(config cfg: OPTConfig, batch: Int, capacity: Int, chunk: Int = 256) -> Int {
        let B = max(batch, 1), S = max(capacity, 1), chunk = max(1, min(chunk, S))
        var floats = ForwardPass.floatCount(
            config: cfg, rows: saturatingProduct(B, chunk), chunk: chunk, scoreColumns: S)
        floats = saturatingSum(floats, saturatingProduct(saturatingSum(B, logitRows), cfg.vocabSize))
        floats = saturatingSum(floats, kvFloats(config: cfg, sequences: B, capacity: S))
        return saturatingSum(saturatingProduct(floats, 4), saturatingProduct(B, S))
    }

    /// Forgets every token; the buffers are kept for the next batch.
    public func reset() {
        cache.length = 0
        for b in 0..<B { validCount[b] = 0 }
    }

    /// Appends tokens (B rows of equal length) with their mask (1 real, 0 padding; default all 1).
    public func append(
        tokens rows: [[Int]], mask: [[Int]]? = nil, delta: ProjectionDelta? = nil,
        logits: LogitsRequest = .last
    ) throws {
        guard rows.count == B else { throw EngineError.invalidRequest("expected \(B) sequences, got \(rows.count)") }
        let n = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == n }) else {
            throw EngineError.invalidRequest("rows have different lengths")
        }
        if let mask {
            guard mask.count == B, zip(mask, rows).allSatisfy({ $0.count == $1.count }) else {
                throw EngineError.invalidRequest("the mask's shape differs from the tokens'")
            }
        }
        guard past + n <= capacity else {
            throw EngineError.invalidRequest("\(past + n) tokens exceed the session capacity of \(capacity)")
        }
        guard past + n <= model.config.maxPositionEmbeddings else {
            throw EngineError.invalidRequest(
                "\(past + n) tokens exceed the model's \(model.config.maxPositionEmbeddings) positions")
        }
        let V = model.config.vocabSize
        for row in rows {
            for id in row where id < 0 || id >= V {
                throw EngineError.invalidRequest("token id \(id) is outside the vocabulary of \(V)")
            }
        }
        var start = 0
        while start < n {
            let t = min(chunk, n - start)
            pass.rows = B
            pass.T = t
            for b in 0..<B {
                for i in 0..<t {
                    let real = (mask?[b][start + i] ?? 1) != 0
                    pass.tokens[b * t + i] = Int32(rows[b][start + i])
                    cache.keyMask[b * capacity + past + i] = real ? 1 : 0
                    pass.positions[b * t + i] = real ? validCount[b] : -1
                    if real { validCount[b] += 1 }
                }
            }
            model.forwardHidden(pass, attention: cache, delta: delta)
            emitLogits(logits, offset: start, isLastChunk: start + t == n)
            cache.length += t
            start += t
        }
    }

    /// One decode step: `stepTokens` (B) already written; every sequence gets one real token.
    /// Leaves the logits in `lastLogits`.
    public func step(delta: ProjectionDelta? = nil) throws {
        let limit = min(capacity, model.config.maxPositionEmbeddings)
        guard past + 1 <= limit else {
            throw EngineError.invalidRequest("sequence reached the limit of \(limit) tokens")
        }
        let V = model.config.vocabSize
        for b in 0..<B where stepTokens[b] < 0 || Int(stepTokens[b]) >= V {
            throw EngineError.invalidRequest("token id \(stepTokens[b]) is outside the vocabulary of \(V)")
        }
        pass.rows = B
        pass.T = 1
        for b in 0..<B {
            pass.tokens[b] = stepTokens[b]
            cache.keyMask[b * capacity + past] = 1
            pass.positions[b] = validCount[b]
            validCount[b] += 1
        }
        model.forwardHidden(pass, attention: cache, delta: delta)
        model.logits(out: lastLogits, hidden: pass.hidden, rows: B, scratch: pass.kernelScratch)
        cache.length += 1
    }

    private func emitLogits(_ request: LogitsRequest, offset: Int, isLastChunk: Bool) {
        let E = model.config.wordEmbedProjDim, V = model.config.vocabSize, T = pass.T
        switch request {
        case .none:
            break
        case .last:
            guard isLastChunk else { return }
            for b in 0..<B {
                model.logits(
                    out: lastLogits + b * V, hidden: pass.hidden + (b * T + T - 1) * E, rows: 1,
                    scratch: pass.kernelScratch)
            }
        case .all(let body):
            let rows = Self.logitRows
            for b in 0..<B {
                var t0 = 0
                while t0 < T {
                    let nr = min(rows, T - t0)
                    model.logits(
                        out: logitBlock, hidden: pass.hidden + (b * T + t0) * E, rows: nr,
                        scratch: pass.kernelScratch)
                    for r in 0..<nr { body(b, offset + t0 + r, logitBlock + r * V) }
                    if isLastChunk && t0 + nr == T {
                        (lastLogits + b * V).update(from: logitBlock + (nr - 1) * V, count: V)
                    }
                    t0 += nr
                }
            }
        }
    }
}

/// Floats of the K and V of `sequences` sequences of `capacity` tokens over every layer: 2·L·n·S·C.
func kvFloats(config cfg: OPTConfig, sequences: Int, capacity: Int) -> Int {
    saturatingProduct(
        saturatingProduct(saturatingProduct(2, cfg.numHiddenLayers), max(sequences, 0)),
        saturatingProduct(capacity, cfg.hiddenSize))
}
