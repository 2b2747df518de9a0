// Scorer: log-probabilities of given tokens — the primitive perplexity and multiple-choice evaluation
// use. For each sequence, logprobs[t] = log p(tokens[t+1] | tokens[0...t]), computed with a
// log-softmax over the vocabulary in Double.
import Foundation

public struct ScoreResult: Sendable, Equatable {
    public var tokens: [Int]
    public var logprobs: [Float]  // tokens.count - 1 values
    public var sumLogprob: Double
    /// exp(-mean logprob); NaN when there is nothing to score.
    public var perplexity: Double {
        logprobs.isEmpty ? .nan : exp(-sumLogprob / Double(logprobs.count))
    }
}

public final class Scorer: @unchecked Sendable {
    public let model: OPTModel
    public let tokenizer: BPETokenizer

    public init(model: OPTModel, tokenizer: BPETokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Scores each text's tokens after the BOS.
    public func score(texts: [String], delta: ProjectionDelta? = nil) throws -> [ScoreResult] {
        let seqs = texts.map { tokenizer.encode($0) }
        return zip(seqs, try tokenLogprobs(sequences: seqs, delta: delta)).map { tokens, lp in
            ScoreResult(tokens: tokens, logprobs: lp, sumLogprob: lp.reduce(0) { $0 + Double($1) })
        }
    }

    /// logprobs of tokens[1...] for each sequence, run as one right-padded batch.
    func tokenLogprobs(sequences: [[Int]], delta: ProjectionDelta? = nil) throws -> [[Float]] {
        guard !sequences.isEmpty else { return [] }
        let cfg = model.config, V = cfg.vocabSize
        let T = sequences.map(\.count).max() ?? 0
        guard T <= cfg.maxPositionEmbeddings else {
            throw EngineError.invalidRequest(
                "sequence of \(T) tokens exceeds the model's \(cfg.maxPositionEmbeddings) positions")
        }
        guard T > 0 else { return sequences.map { _ in [] } }
        let rows = sequences.map { $0 + [Int](repeating: cfg.padTokenId, count: T - $0.count) }
        let mask = sequences.map { [Int](repeating: 1, count: $0.count) + [Int](repeating: 0, count: T - $0.count) }
        var out = sequences.map { [Float](repeating: 0, count: max($0.count - 1, 0)) }
        try model.checkSessionMemory(batch: sequences.count, capacity: T)
        let session = BatchSession(model: model, batch: sequences.count, capacity: T)
        try session.append(
            tokens: rows, mask: mask, delta: delta,
            logits: .all({ b, t, logits in
                guard t + 1 < sequences[b].count else { return }
                out[b][t] = logSoftmaxAt(logits, V: V, index: sequences[b][t + 1])
            }))
        return out
    }
}

/// log softmax(logits)[index], stable, accumulated in Double.
public func logSoftmaxAt(_ logits: UnsafePointer<Float>, V: Int, index: Int) -> Float {
    var m = -Float.infinity
    for i in 0..<V where logits[i] > m { m = logits[i] }
    var sum: Double = 0
    for i in 0..<V { sum += Double(expf(logits[i] - m)) }
    return Float(Double(logits[index] - m) - log(sum))
}
