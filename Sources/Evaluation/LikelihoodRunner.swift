// LikelihoodRunner: the scoring half of the evaluation — everything computed from log-probabilities of
// given tokens rather than from generated text.
//   PIQA (lm-evaluation-harness's multiple choice): context "Question: {goal}\nAnswer:", continuation
//     " {sol}"; the whole string tokenized (with OPT's BOS) gives the continuation's tokens after the
//     context's own; the model reads context + continuation (left-truncated to positions + 1) and the
//     continuation's log-probabilities are summed. acc: larger sum; acc_norm: larger sum / len(sol) in
//     characters (code points, without the leading space). Ties go to sol1 (numpy's argmax).
//   wikitext: Perplexity's windows over the joined rows, tokenized once.
import Foundation
import OPTEngine

struct LikelihoodRunner {
    let model: OPTModel
    let tokenizer: BPETokenizer
    let delta: ProjectionDelta?
    var tally: TokenTally? = nil

    /// log p(tokens[t] | tokens[..<t]) for t in firstTarget..<tokens.count (firstTarget ≥ 1). The model
    /// reads tokens[..<count-1], so up to positions + 1 tokens fit.
    func targetLogprobs(_ tokens: [Int], firstTarget: Int) throws -> [Float] {
        precondition(firstTarget >= 1 && firstTarget <= tokens.count, "targets must follow a token")
        let input = Array(tokens.dropLast())
        guard !input.isEmpty, firstTarget < tokens.count else { return [] }
        let V = model.config.vocabSize
        var out = [Float](repeating: 0, count: tokens.count - firstTarget)
        let session = BatchSession(model: model, batch: 1, capacity: input.count)
        try session.append(
            tokens: [input], delta: delta,
            logits: .all({ _, t, logits in
                let target = t + 1
                guard target >= firstTarget else { return }
                out[target - firstTarget] = logSoftmaxAt(logits, V: V, index: tokens[target])
            }))
        tally?.add(input.count)
        return out
    }

    /// One PIQA solution: (summed log-probability of the continuation, its tokens).
    func continuationLogprob(goal: String, solution: String, index: Int) throws -> (sum: Double, tokens: Int) {
        var (context, continuation) = TaskPrompts.piqaLoglikelihood(goal: goal, solution: solution)
        // The harness moves trailing whitespace of the context to the continuation.
        let contextScalars = PythonText.scalars(context)
        let trimmed = PythonText.rstrip(contextScalars)
        if trimmed.count < contextScalars.count {
            continuation = PythonText.string(Array(contextScalars[trimmed.count...])) + continuation
            context = PythonText.string(trimmed)
        }
        let whole = tokenizer.encode(context + continuation)
        let contextTokens = tokenizer.encode(context)
        let continuationTokens = Array(whole.dropFirst(min(contextTokens.count, whole.count)))
        guard !continuationTokens.isEmpty else { return (0, 0) }
        let positions = model.config.maxPositionEmbeddings
        guard continuationTokens.count <= positions else {
            throw EvaluationError.exampleTooLong(
                index: index, tokens: continuationTokens.count + 1, positions: positions)
        }
        let sequence = Array((contextTokens + continuationTokens).suffix(positions + 1))
        let lps = try targetLogprobs(sequence, firstTarget: sequence.count - continuationTokens.count)
        return (lps.reduce(0.0) { $0 + Double($1) }, continuationTokens.count)
    }

    /// `skip`: examples done by an earlier run (see EvalOptions.skip).
    func piqa(
        _ examples: [PIQAExample], skip: Int = 0, progress: (Double) -> Void,
        shouldCancel: () -> Bool
    ) throws -> (samples: [EvalSample], completed: Bool) {
        var samples: [EvalSample] = []
        for (index, example) in examples.enumerated() where index >= skip {
            if shouldCancel() { return (samples, false) }
            let l1 = try continuationLogprob(goal: example.goal, solution: example.sol1, index: index)
            let l2 = try continuationLogprob(goal: example.goal, solution: example.sol2, index: index)
            let n1 = Double(example.sol1.unicodeScalars.count), n2 = Double(example.sol2.unicodeScalars.count)
            let pred = l2.sum > l1.sum ? 1 : 0
            let predNorm = l2.sum / n2 > l1.sum / n1 ? 1 : 0
            samples.append(
                EvalSample(
                    index: index, id: example.id, input: example.goal, expected: "\(example.label + 1)", output: "",
                    score: pred == example.label ? 1 : 0,
                    details: [
                        "ll_1": "\(l1.sum)", "ll_2": "\(l2.sum)", "tokens_1": "\(l1.tokens)",
                        "tokens_2": "\(l2.tokens)",
                        "choice": "\(pred + 1)", "choice_norm": "\(predNorm + 1)",
                        "acc_norm": predNorm == example.label ? "1" : "0",
                    ]))
            progress(Double(index + 1) / Double(examples.count))
        }
        return (samples, true)
    }

    static func piqaMetrics(_ samples: [EvalSample]) -> [EvalMetric] {
        guard !samples.isEmpty else { return [] }
        let n = Double(samples.count)
        let acc = Double(samples.filter { $0.score == 1 }.count) / n
        let accNorm = Double(samples.filter { $0.details["acc_norm"] == "1" }.count) / n
        return [EvalMetric("acc", acc), EvalMetric("acc_norm", accNorm)]
    }

    /// Scores the dataset's windows after the first `skip`; the result covers the windows done when
    /// cancelled. `windows` is the number of windows of the whole text.
    func wikitext(
        _ dataset: WikitextDataset, maxLength: Int, stride: Int, skip: Int = 0, progress: (Double) -> Void,
        shouldCancel: () -> Bool
    ) throws -> (result: PerplexityResult, samples: [EvalSample], completed: Bool, windows: Int) {
        let text = dataset.joined
        let ids = tokenizer.encode(text)
        guard ids.count >= 2 else {
            throw EvaluationError.invalidRequest("the wikitext text has \(ids.count) token(s); perplexity needs 2")
        }
        let windows = Perplexity.windows(tokenCount: ids.count, maxLength: maxLength, stride: stride)
        var result = PerplexityResult(windowLosses: [], totalNLL: 0, tokenCount: 0, byteCount: text.utf8.count)
        var samples: [EvalSample] = []
        for (k, w) in windows.enumerated() where k >= skip {
            if shouldCancel() { return (result, samples, false, windows.count) }
            let window = Array(ids[w.begin..<w.end])
            let lps = try targetLogprobs(window, firstTarget: w.firstTarget - w.begin)
            let nll = -lps.reduce(0.0) { $0 + Double($1) }
            result.windowLosses.append(nll / Double(lps.count))
            result.totalNLL += nll
            result.tokenCount += lps.count
            samples.append(
                EvalSample(
                    index: k, input: "tokens \(w.begin)..<\(w.end)", expected: "", output: "",
                    score: nll / Double(lps.count),
                    details: ["targets": "\(lps.count)", "nll": "\(nll)"]))
            progress(Double(k + 1) / Double(windows.count))
        }
        return (result, samples, true, windows.count)
    }
}
