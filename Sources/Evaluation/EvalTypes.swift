// EvalTypes: what an evaluation is asked (task, method, options) and what it answers (EvalReport: the
// metrics, the number of examples, and one EvalSample per example for drill-down).
import Foundation

/// The benchmark being run.
public enum EvalTask: String, CaseIterable, Sendable {
    case squad, piqa, wikitext

    /// The task named `name` (as a payload spells it), or `EvaluationError.unknownTask`.
    public init(parsing name: String) throws {
        guard let task = EvalTask(rawValue: name.lowercased()) else { throw EvaluationError.unknownTask(name) }
        self = task
    }
}

/// How the task is scored.
public enum EvalMethod: String, CaseIterable, Sendable {
    /// The Muwa evaluation notebook, quirks included: generation for SQuAD and PIQA, window-mean
    /// perplexity for wikitext.
    case muwa
    /// The standard figures: PIQA acc/acc_norm by log-likelihood (lm-evaluation-harness), token-weighted
    /// wikitext perplexity and bits per byte.
    case loglikelihood

    /// The method named `name`; nil or "" means `.muwa` (the payload's default).
    public init(parsing name: String?) throws {
        guard let name, !name.isEmpty else {
            self = .muwa
            return
        }
        guard let method = EvalMethod(rawValue: name.lowercased()) else { throw EvaluationError.unknownMethod(name) }
        self = method
    }
}

public struct EvalOptions: Sendable, Equatable {
    /// Evaluate only the first `limit` examples (SQuAD: of the subset; wikitext: rows of the file).
    public var limit: Int?
    /// SQuAD: every `squadStride`-th question starting at the first (10 = "SQuAD mini"; 1 = all).
    public var squadStride: Int
    /// Muwa generation: new tokens per prompt (always generated in full: no stop at EOS).
    public var maxNewTokens: Int
    public var repetitionPenalty: Float
    /// Perplexity windows: tokens per window (clamped to the model's positions) and stride (clamped to
    /// the window length).
    public var maxLength: Int
    public var stride: Int
    /// Resuming: the first `skip` examples of the selection (wikitext: windows) were evaluated by an
    /// earlier, interrupted run and are not run again; the report's samples and metrics cover the rest,
    /// with their indices in the whole selection (merge with ``Evaluator/metrics(task:method:samples:utf8Bytes:)``).
    public var skip: Int

    public init(
        limit: Int? = nil, squadStride: Int = 10, maxNewTokens: Int = 32, repetitionPenalty: Float = 1.2,
        maxLength: Int = 1024, stride: Int = 512, skip: Int = 0
    ) {
        self.limit = limit
        self.squadStride = squadStride
        self.maxNewTokens = maxNewTokens
        self.repetitionPenalty = repetitionPenalty
        self.maxLength = maxLength
        self.stride = stride
        self.skip = skip
    }

    public func validate() throws {
        func bad(_ message: String) -> EvaluationError { .invalidRequest(message) }
        if let limit, limit < 1 { throw bad("limit must be at least 1, got \(limit)") }
        guard squadStride >= 1 else { throw bad("squad stride must be at least 1, got \(squadStride)") }
        guard maxNewTokens >= 1 else { throw bad("max_new_tokens must be at least 1, got \(maxNewTokens)") }
        guard repetitionPenalty.isFinite && repetitionPenalty > 0 else {
            throw bad("repetition_penalty must be > 0, got \(repetitionPenalty)")
        }
        guard maxLength >= 2 else { throw bad("max_length must be at least 2, got \(maxLength)") }
        guard stride >= 1 else { throw bad("stride must be at least 1, got \(stride)") }
        guard skip >= 0 else { throw bad("skip must be at least 0, got \(skip)") }
    }
}

public struct EvalMetric: Sendable, Equatable {
    public var name: String
    public var value: Double

    public init(_ name: String, _ value: Double) {
        self.name = name
        self.value = value
    }
}

/// One evaluated example (a question, a PIQA goal, a perplexity window).
public struct EvalSample: Sendable, Equatable {
    /// Position among the evaluated examples.
    public var index: Int
    public var id: String?
    /// What the model was asked: the question, the goal, or "tokens a..<b" for a window.
    public var input: String
    /// The gold: answers joined by " | ", the correct solution ("1"/"2"), or "" for a window.
    public var expected: String
    /// What the model answered (the response after the template marker), or "" for likelihood scoring.
    public var output: String
    /// The example's score: SQuAD F1 (0–100), 1/0 correct, or a window's mean loss.
    public var score: Double
    /// Task-specific fields, e.g. "final_prediction", "choice", "rule", "ll_1".
    public var details: [String: String]

    public init(
        index: Int, id: String? = nil, input: String, expected: String, output: String, score: Double,
        details: [String: String] = [:]
    ) {
        self.index = index
        self.id = id
        self.input = input
        self.expected = expected
        self.output = output
        self.score = score
        self.details = details
    }
}

public struct EvalReport: Sendable, Equatable {
    public var task: EvalTask
    public var method: EvalMethod
    /// Examples evaluated (windows are not examples: wikitext's n is the number of scored tokens).
    public var n: Int
    /// Headline metric first.
    public var metrics: [EvalMetric]
    public var samples: [EvalSample]
    /// False when cancelled part-way; the metrics then cover the examples done.
    public var completed: Bool
    /// The effective settings (clamped window, stride, dataset subset, …), for the record.
    public var settings: [String: String]

    public func metric(_ name: String) -> Double? { metrics.first { $0.name == name }?.value }
}

/// A running count of the tokens an evaluation processed (read by the job's progress reports while the
/// evaluation runs on its own thread).
public final class TokenTally: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0

    public init() {}

    func add(_ tokens: Int) { lock.withLock { total += tokens } }

    public var count: Int { lock.withLock { total } }
}
