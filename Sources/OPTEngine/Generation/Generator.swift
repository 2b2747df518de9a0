// Generator: prompts in, texts out. Prompts are left-padded into one batch (positions come from the
// mask, as in transformers), prefilled through an InferenceSession, then decoded one token per step
// for every sequence until each has finished (EOS, a stop string, max_new_tokens, or cancellation).
// The decode loop writes into buffers made before it starts; it allocates nothing per token
// (except for stop-string matching, which needs the text).

public final class Generator: @unchecked Sendable {
    public let model: OPTModel
    public let tokenizer: BPETokenizer

    public init(model: OPTModel, tokenizer: BPETokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    public func generate(prompts: [String], options: GenerationOptions, delta: ProjectionDelta? = nil,
                         shouldCancel: () -> Bool = { false }) throws -> [GenerationOutput] {
        try generate(promptIds: prompts.map { tokenizer.encode($0) }, options: prompts.map { _ in options },
                     delta: delta, shouldCancel: shouldCancel)
    }

    /// One batch; each sequence with its own options (sampling settings, limits, stop strings).
    public func generate(promptIds: [[Int]], options: [GenerationOptions], delta: ProjectionDelta? = nil,
                         shouldCancel: () -> Bool = { false }) throws -> [GenerationOutput] {
        guard !promptIds.isEmpty else { return [] }
        guard options.count == promptIds.count else { throw EngineError.invalidRequest("one options value per prompt") }
        for o in options { try o.validate() }
        let cfg = model.config, V = cfg.vocabSize, B = promptIds.count
        let maxPrompt = promptIds.map(\.count).max() ?? 0
        guard promptIds.allSatisfy({ !$0.isEmpty }) else { throw EngineError.invalidRequest("a prompt has no tokens") }
        let maxNew = options.map(\.maxNewTokens).max() ?? 0
        guard maxPrompt <= cfg.maxPositionEmbeddings else {
            throw EngineError.invalidRequest(
                "prompt of \(maxPrompt) tokens exceeds the model's \(cfg.maxPositionEmbeddings) positions")
        }
        let capacity = min(maxPrompt + maxNew, cfg.maxPositionEmbeddings)
        try model.checkSessionMemory(batch: B, capacity: max(capacity, 1))

        // left padding: (B, maxPrompt)
        let pad = cfg.padTokenId
        let rows = promptIds.map { [Int](repeating: pad, count: maxPrompt - $0.count) + $0 }
        let mask = promptIds.map { [Int](repeating: 0, count: maxPrompt - $0.count) + [Int](repeating: 1, count: $0.count) }

        var penalties = options.map { RepetitionPenalty(penalty: $0.repetitionPenalty, vocabularySize: V) }
        for b in 0..<B where options[b].repetitionPenalty != 1 { for id in rows[b] { penalties[b].observe(id) } }
        var samplers: [any LogitSampler] = options.map { o -> any LogitSampler in
            if o.doSample {
                return CategoricalSampler(temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
                                          vocabularySize: V)
            }
            return GreedySampler()
        }
        var generated = options.map { o -> [Int] in var a = [Int](); a.reserveCapacity(o.maxNewTokens); return a }
        var finish = [FinishReason?](repeating: nil, count: B)
        var decoders = options.map { _ in StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: true) }
        var texts = [String](repeating: "", count: B)
        var stopped = [String?](repeating: nil, count: B)

        let session = InferenceSession(model: model, batch: B, capacity: max(capacity, 1))
        for b in 0..<B where options[b].maxNewTokens == 0 { finish[b] = .length }
        if finish.contains(where: { $0 == nil }) {
            if shouldCancel() {
                for b in 0..<B where finish[b] == nil { finish[b] = .cancelled }
            } else {
                try session.append(tokens: rows, mask: mask, delta: delta, logits: .last)
            }
        }
        while finish.contains(where: { $0 == nil }) {
            for b in 0..<B {
                guard finish[b] == nil else { session.stepTokens[b] = Int32(pad); continue }
                let logits = session.lastLogits + b * V
                penalties[b].apply(logits)
                let id = samplers[b].sample(logits: logits, count: V)
                generated[b].append(id)
                penalties[b].observe(id)
                session.stepTokens[b] = Int32(id)
                let o = options[b]
                if o.stopAtEOS && id == (o.eosTokenId ?? cfg.eosTokenId) {
                    finish[b] = .eos
                } else if !o.stop.isEmpty {
                    texts[b] += decoders[b].append(id)
                    if let cut = earliestStop(in: texts[b], stops: o.stop) {
                        stopped[b] = String(texts[b][..<cut])
                        finish[b] = .stop
                    }
                }
                if finish[b] == nil && generated[b].count >= o.maxNewTokens { finish[b] = .length }
                if finish[b] == nil && promptIds[b].count + generated[b].count >= cfg.maxPositionEmbeddings {
                    finish[b] = .length
                }
            }
            guard finish.contains(where: { $0 == nil }) else { break }
            if shouldCancel() {
                for b in 0..<B where finish[b] == nil { finish[b] = .cancelled }
                break
            }
            try session.step(delta: delta)
        }

        return (0..<B).map { b in
            let text = stopped[b] ?? tokenizer.decode(generated[b], skipSpecialTokens: true)
            return GenerationOutput(text: text, tokenIds: generated[b], promptTokenCount: promptIds[b].count,
                                    finishReason: finish[b] ?? .length)
        }
    }

    /// Index where the earliest occurrence of any stop string begins.
    private func earliestStop(in text: String, stops: [String]) -> String.Index? {
        var best: String.Index?
        for s in stops {
            if let r = text.range(of: s), best.map({ r.lowerBound < $0 }) ?? true { best = r.lowerBound }
        }
        return best
    }
}
