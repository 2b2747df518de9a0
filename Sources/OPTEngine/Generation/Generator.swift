// Generator: prompts in, texts out — a thin use of BatchDecoder, the one decode loop (the daemon's generate
// jobs run the same loop through GenerationBatcher). Up to `rowInvariantMaxRows` prompts decode together;
// more wait for a free row and join as earlier ones finish. Each prompt is prefilled alone and every step's
// projections go through the row-invariant kernels, so a prompt's text is the same alone, in any batch, from
// `muwad generate` or from a daemon job.

public final class Generator: @unchecked Sendable {
    public let model: OPTModel
    public let tokenizer: BPETokenizer

    public init(model: OPTModel, tokenizer: BPETokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    public func generate(
        prompts: [String], options: GenerationOptions, delta: ProjectionDelta? = nil,
        shouldCancel: () -> Bool = { false }
    ) throws -> [GenerationOutput] {
        try generate(
            promptIds: prompts.map { tokenizer.encode($0) }, options: prompts.map { _ in options },
            delta: delta, shouldCancel: shouldCancel)
    }

    /// Each sequence with its own options (sampling settings, limits, stop strings); outputs in prompt order.
    /// `delta` (an adapter) is used for every sequence, so it must treat every row alike (see DecodeRequest).
    /// `shouldCancel` is asked between steps: unfinished sequences then end with finish reason `cancelled`.
    public func generate(
        promptIds: [[Int]], options: [GenerationOptions], delta: ProjectionDelta? = nil,
        shouldCancel: () -> Bool = { false }
    ) throws -> [GenerationOutput] {
        try generate(
            promptIds: promptIds, options: options, deltas: promptIds.map { _ in delta },
            shouldCancel: shouldCancel)
    }

    /// As above, with a delta (an adapter, or none) per sequence.
    public func generate(
        promptIds: [[Int]], options: [GenerationOptions], deltas: [ProjectionDelta?],
        shouldCancel: () -> Bool = { false }
    ) throws -> [GenerationOutput] {
        guard !promptIds.isEmpty else { return [] }
        guard options.count == promptIds.count, deltas.count == promptIds.count else {
            throw EngineError.invalidRequest("one options value and one delta per prompt")
        }
        for o in options { try o.validate() }
        guard promptIds.allSatisfy({ !$0.isEmpty }) else { throw EngineError.invalidRequest("a prompt has no tokens") }
        let positions = model.config.maxPositionEmbeddings
        if let longest = promptIds.map(\.count).max(), longest > positions {
            throw EngineError.invalidRequest("prompt of \(longest) tokens exceeds the model's \(positions) positions")
        }
        let rows = min(promptIds.count, rowInvariantMaxRows)
        let capacity = zip(promptIds, options).map { min($0.count + $1.maxNewTokens, positions) }.max() ?? 1
        try model.checkSessionMemory(batch: rows, capacity: max(capacity, 1))

        let decoder = BatchDecoder(model: model, tokenizer: tokenizer, maxRows: rows)
        var outputs = [GenerationOutput?](repeating: nil, count: promptIds.count)
        var owner = [Int?](repeating: nil, count: rows)  // slot → prompt index
        var next = 0
        while next < promptIds.count || decoder.hasWork {
            while next < promptIds.count && decoder.freeSlots > 0 {
                let slot = try decoder.add(
                    DecodeRequest(promptIds: promptIds[next], options: options[next], delta: deltas[next]))
                owner[slot] = next
                next += 1
            }
            if shouldCancel() {
                for slot in decoder.activeSlots {
                    if let i = owner[slot] { outputs[i] = decoder.remove(slot) }
                }
                break
            }
            for event in try decoder.step() {
                if let output = event.output, let i = owner[event.slot] {
                    outputs[i] = output
                    owner[event.slot] = nil
                }
            }
        }
        return outputs.enumerated().map { i, output in
            output
                ?? GenerationOutput(
                    text: "", tokenIds: [], promptTokenCount: promptIds[i].count,
                    finishReason: .cancelled)
        }
    }
}

/// Index in `text` where the earliest occurrence of any of `stops` begins.
func earliestStop(in text: String, stops: [String]) -> String.Index? {
    var best: String.Index?
    for s in stops {
        if let r = text.range(of: s), best.map({ r.lowerBound < $0 }) ?? true { best = r.lowerBound }
    }
    return best
}
