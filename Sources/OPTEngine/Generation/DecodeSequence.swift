// DecodeSequence: one sequence being generated in a BatchDecoder — its prompt, options, sampler (with its
// own seeded RNG), repetition penalty, the tokens so far and why it finished. `accept` turns one row of
// logits into the next token and decides whether the sequence is done: penalty, sample, then EOS, stop strings,
// max_new_tokens, the model's positions (transformers' order).
// Nothing here depends on the other sequences of the batch.

/// A sequence to decode in a ``BatchDecoder``.
public struct DecodeRequest {
    public var promptIds: [Int]
    public var options: GenerationOptions
    /// Added after every base projection for this sequence's rows. The decoder hands it runs of rows of any
    /// length (batch sizes change between steps), so it must treat every row alike — e.g. LoRAOps'
    /// `AdapterBatch(adapter:model:)`. Sequences with the same delta object share one call per run.
    public var delta: ProjectionDelta?

    public init(promptIds: [Int], options: GenerationOptions = GenerationOptions(), delta: ProjectionDelta? = nil) {
        self.promptIds = promptIds
        self.options = options
        self.delta = delta
    }
}

struct DecodeSequence {
    let promptIds: [Int]
    let options: GenerationOptions
    let delta: ProjectionDelta?
    private let eos: Int, maxPositions: Int, tokenizer: BPETokenizer
    private var penalty: RepetitionPenalty
    private var sampler: any LogitSampler
    private var decoder: StreamingDecoder
    private(set) var generated: [Int] = []
    private var text = ""
    private var stopped: String?
    private(set) var finish: FinishReason?

    init(_ request: DecodeRequest, config: OPTConfig, tokenizer: BPETokenizer) {
        let o = request.options, V = config.vocabSize
        promptIds = request.promptIds
        options = o
        delta = request.delta
        eos = o.eosTokenId ?? config.eosTokenId
        maxPositions = config.maxPositionEmbeddings
        self.tokenizer = tokenizer
        penalty = RepetitionPenalty(penalty: o.repetitionPenalty, vocabularySize: V)
        if o.repetitionPenalty != 1 { for id in request.promptIds { penalty.observe(id) } }
        if o.doSample {
            sampler = CategoricalSampler(
                temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
                vocabularySize: V)
        } else {
            sampler = GreedySampler()
        }
        decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: true)
        generated.reserveCapacity(o.maxNewTokens)
        if o.maxNewTokens == 0 { finish = .length }
    }

    /// Tokens the sequence's cache needs: its prompt and every generated token but the last.
    var capacity: Int { min(promptIds.count + options.maxNewTokens, maxPositions) }

    /// Samples the next token from `logits` (V values, overwritten) and records it.
    mutating func accept(logits: UnsafeMutablePointer<Float>, count V: Int) -> Int {
        penalty.apply(logits)
        let id = sampler.sample(logits: logits, count: V)
        generated.append(id)
        penalty.observe(id)
        if options.stopAtEOS && id == eos {
            finish = .eos
        } else if !options.stop.isEmpty {
            text += decoder.append(id)
            if let cut = earliestStop(in: text, stops: options.stop) {
                stopped = String(text[..<cut])
                finish = .stop
            }
        }
        if finish == nil && generated.count >= options.maxNewTokens { finish = .length }
        if finish == nil && promptIds.count + generated.count >= maxPositions { finish = .length }
        return id
    }

    /// Marks an unfinished sequence as cancelled.
    mutating func cancel() {
        if finish == nil { finish = .cancelled }
    }

    /// What the sequence produced (so far, while it runs).
    var output: GenerationOutput {
        let text = stopped ?? tokenizer.decode(generated, skipSpecialTokens: true)
        return GenerationOutput(
            text: text, tokenIds: generated, promptTokenCount: promptIds.count,
            finishReason: finish ?? .cancelled)
    }
}
