// EvaluateRequest: an `evaluate` job's payload, validated. Every mistake fails the job at once with a
// message naming the field; names (model, adapter) are resolved by EvaluateJobExecutor through
// Locations, and the dataset files are read — with their own messages (file, line) — by the Evaluation
// library. Options that do not apply to the task and method are refused rather than ignored.
//
//   {"model": "opt-1.3b", "adapter": "muwa", "task": "squad", "dataset": {"path": "/data/squad/dev-v1.1.json"}}
//   {"model": "/srv/models/opt-1.3b", "task": "piqa", "method": "loglikelihood",
//    "dataset": {"path": "/data/piqa/valid.jsonl", "labels": "/data/piqa/valid-labels.lst"}, "limit": 500}
//   {"model": "opt-1.3b", "adapter": "muwa", "compare_base": true, "task": "wikitext",
//    "dataset": "/data/wikitext-2-raw/wiki.test.raw", "max_length": 1024, "stride": 512}
//
//   field               default  applies to
//   method              muwa     muwa | loglikelihood (squad: muwa only)
//   limit               all      the first N examples after the task's own selection (wikitext: rows)
//   squad_stride        10       squad: every N-th question (10 = the notebook's "SQuAD mini"; 1 = all)
//   max_new_tokens      32       squad, piqa with method muwa (greedy, always generated in full)
//   repetition_penalty  1.2      squad, piqa with method muwa
//   max_length, stride  1024/512 wikitext: perplexity windows (clamped to the model's positions)
//   compare_base        false    with adapter: the base model and the adapter on the same examples
import Evaluation
import Foundation
import JobQueue
import Storage

struct EvaluateRequest {
    static let fields: Set<String> = [
        "model", "adapter", "task", "method", "dataset", "limit", "compare_base", "squad_stride", "max_new_tokens",
        "repetition_penalty", "max_length", "stride",
    ]
    static let datasetFields: Set<String> = ["path", "labels"]

    /// As the payload gave them (resolved by Locations).
    let model: String
    /// compute / weights / int8_threshold.
    let engine: EnginePayload
    let adapter: String?
    let task: EvalTask
    let method: EvalMethod
    /// One path, or PIQA's examples file and labels file.
    var dataset: [String]
    let compareBase: Bool
    let options: EvalOptions

    init(payload: JSONValue?) throws {
        let reader = try PayloadReader(kind: "evaluate", payload: payload)
        try reader.rejectUnknownKeys(Self.fields.union(EnginePayload.fields))
        engine = try EnginePayload(reader)

        model = try reader.string("model")
        adapter = try reader.optionalString("adapter")

        let tasks = EvalTask.allCases.map(\.rawValue).joined(separator: ", ")
        guard let taskName = try reader.optionalString("task") else {
            throw reader.failure("task is required: one of \(tasks)")
        }
        do {
            task = try EvalTask(parsing: taskName)
            method = try EvalMethod(parsing: try reader.optionalString("method"))
        } catch let error as EvaluationError {
            throw reader.failure("\(error)")
        }
        if task == .squad && method != .muwa {
            throw reader.failure(
                "\(EvaluationError.unsupported(task: task.rawValue, method: method.rawValue)) "
                    + "(squad is scored on generated answers: method muwa)")
        }

        dataset = try Self.datasetPaths(reader, task: task)

        compareBase = try reader.optionalBool("compare_base") ?? false
        if compareBase && adapter == nil {
            throw reader.failure(
                "compare_base needs an adapter: it evaluates the base model and the adapter on the same examples")
        }

        let generates = method == .muwa && task != .wikitext
        try Self.refuse(["squad_stride"], unless: task == .squad, reader, "the squad task")
        try Self.refuse(
            ["max_new_tokens", "repetition_penalty"], unless: generates, reader,
            "generation (method muwa on squad or piqa)")
        try Self.refuse(["max_length", "stride"], unless: task == .wikitext, reader, "the wikitext task")

        let defaults = EvalOptions()
        options = EvalOptions(
            limit: try reader.optionalInt("limit", in: 1...100_000_000),
            squadStride: try reader.optionalInt("squad_stride", in: 1...1_000_000) ?? defaults.squadStride,
            maxNewTokens: try reader.optionalInt("max_new_tokens", in: 1...8192) ?? defaults.maxNewTokens,
            repetitionPenalty: Float(
                try reader.optionalDouble("repetition_penalty", in: 1e-3...100) ?? Double(defaults.repetitionPenalty)),
            maxLength: try reader.optionalInt("max_length", in: 2...1_000_000) ?? defaults.maxLength,
            stride: try reader.optionalInt("stride", in: 1...1_000_000) ?? defaults.stride)
        do {
            try options.validate()
        } catch {
            throw reader.failure("\(error)")
        }
    }

    /// `dataset`: a path, or {"path": …, "labels": …} (labels: PIQA only).
    private static func datasetPaths(_ reader: PayloadReader, task: EvalTask) throws -> [String] {
        let path: String
        var labels: String?
        if reader.object["dataset"]?.stringValue != nil {
            path = try reader.string("dataset")
        } else if let dataset = try reader.nested("dataset") {
            try dataset.rejectUnknownKeys(Self.datasetFields)
            path = try dataset.string("path")
            labels = try dataset.optionalString("labels")
        } else {
            throw reader.failure("dataset is required: {\"path\": …} (\(Self.datasetHint(task)))")
        }
        guard !path.isEmpty else { throw reader.failure("dataset.path must not be empty") }
        guard let labels else { return [path] }
        guard task == .piqa else {
            throw reader.failure("dataset.labels applies to the piqa task only (the task is \(task.rawValue))")
        }
        guard !labels.isEmpty else { throw reader.failure("dataset.labels must not be empty") }
        return [path, labels]
    }

    private static func datasetHint(_ task: EvalTask) -> String {
        switch task {
        case .squad: return "SQuAD v1.1's dev-v1.1.json, or a JSONL export of the squad split"
        case .piqa:
            return "PIQA's directory with valid.jsonl and valid-labels.lst, or valid.jsonl with \"labels\": "
                + "valid-labels.lst, or a JSONL file with a label field"
        case .wikitext: return "wikitext's wiki.test.raw, or a JSONL export with a text field"
        }
    }

    private static func refuse(_ keys: [String], unless applies: Bool, _ reader: PayloadReader, _ what: String) throws {
        guard !applies, let key = keys.first(where: { reader.has($0) }) else { return }
        throw reader.failure("\(key) applies only to \(what)")
    }

    /// What a checkpoint must have been made for to be resumed: the resolved model and adapter, the
    /// normalized request, and the dataset files' sizes and modification times.
    func identity(modelDirectory: String, adapterDirectory: String?) -> JSONValue {
        let stamps = dataset.map(FileStamp.of)
        return [
            "model": .string(modelDirectory), "adapter": adapterDirectory.map { .string($0) } ?? .null,
            "task": .string(task.rawValue), "method": .string(method.rawValue), "dataset": .array(stamps),
            "compare_base": .bool(compareBase), "limit": options.limit.map { .number(Double($0)) } ?? .null,
            "squad_stride": .number(Double(options.squadStride)),
            "max_new_tokens": .number(Double(options.maxNewTokens)),
            "repetition_penalty": .number(Double(options.repetitionPenalty)),
            "max_length": .number(Double(options.maxLength)), "stride": .number(Double(options.stride)),
        ]
    }
}
