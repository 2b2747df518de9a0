// EvaluateCheckpoint: what an evaluate job released at shutdown leaves for its next attempt. The samples
// evaluated so far — per run (the base model, the adapter) — go to a file in the job's work directory;
// the job's checkpoint names that file and how many samples it holds:
//
//   checkpoint  {"samples_file": "/var/lib/muwa/jobs/42/evaluate-samples.json", "done": 137}
//   the file    {"version": 1, "identity": {…the resolved request…},
//                "runs": [{"adapter": null, "completed": true, "settings": {…}, "samples": [{…}, …]}, …]}
//
// The job row's checkpoint is not trusted: its samples_file must lie, symlinks resolved, inside the job's work
// directory under the state directory, or it is not read at all (a role that could write the row must not
// make the daemon read, or echo, any file it likes).
// A checkpoint is used only when its file still holds exactly what it says and was made for the same
// request (model and adapter directories, task, method, options, dataset files' sizes and times);
// otherwise the evaluation starts over, which is always correct, only slower. Samples keep every digit
// (a Double's description reads back as the same Double), so merged metrics equal an uninterrupted run's.
import Evaluation
import Foundation
import Storage

/// One evaluation of a job: the base model (adapter nil) or the adapter.
struct EvaluationRunState: Equatable {
    /// The adapter's name as the payload gave it; nil for the base model.
    var adapter: String?
    var samples: [EvalSample] = []
    var completed = false
    /// The Evaluator's report settings (dataset, effective window, utf8_bytes, …).
    var settings: [String: String] = [:]

    init(adapter: String?) {
        self.adapter = adapter
    }

    /// The metrics over all samples, as one uninterrupted run computes them.
    func metrics(task: EvalTask, method: EvalMethod) -> (metrics: [EvalMetric], n: Int) {
        Evaluator.metrics(
            task: task, method: method, samples: samples, utf8Bytes: settings["utf8_bytes"].flatMap { Int($0) } ?? 0)
    }
}

/// Why a checkpoint cannot be resumed from.
struct CheckpointMismatch: Error, CustomStringConvertible {
    let description: String
}

enum EvaluateCheckpoint {
    static let fileName = "evaluate-samples.json"
    static let version = 1

    /// Writes the runs' samples into `directory` (created if needed) and returns the job's checkpoint.
    static func save(_ runs: [EvaluationRunState], identity: JSONValue, directory: String) throws -> JSONValue {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + fileName
        let document: JSONValue = [
            "version": .number(Double(version)), "identity": identity,
            "runs": .array(
                runs.map { run in
                    [
                        "adapter": run.adapter.map { .string($0) } ?? .null, "completed": .bool(run.completed),
                        "settings": .object(run.settings.mapValues { .string($0) }),
                        "samples": .array(run.samples.map(encode)),
                    ]
                }),
        ]
        try Data(document.jsonText.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        let done = runs.reduce(0) { $0 + $1.samples.count }
        return ["samples_file": .string(path), "done": .number(Double(done))]
    }

    /// The runs an earlier attempt saved, in place of `fresh` (the runs this attempt would start with).
    ///
    /// The checkpoint comes from the job's row, which the daemon does not trust: a samples file that is not,
    /// with symlinks resolved, inside `allowedDirectory` (the job's work directory) is refused unread.
    static func load(
        _ checkpoint: JSONValue, identity: JSONValue, fresh: [EvaluationRunState], allowedDirectory: String
    ) throws -> [EvaluationRunState] {
        guard let path = checkpoint["samples_file"]?.stringValue else {
            throw CheckpointMismatch(description: "the checkpoint has no samples_file")
        }
        guard WorkDirectoryConfinement.isInside(path, directory: allowedDirectory) else {
            throw CheckpointMismatch(
                description:
                    "the checkpoint's samples_file is not inside this job's work directory \(allowedDirectory); "
                    + "it was not read")
        }
        // `done` is in a released job's checkpoint; a periodic save found after a crash has none.
        let done = checkpoint["done"]?.doubleValue
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else { throw CheckpointMismatch(description: "cannot read \(path)") }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: text)
        } catch {
            throw CheckpointMismatch(description: "\(path) is not valid JSON")
        }
        guard document["version"]?.doubleValue == Double(version) else {
            throw CheckpointMismatch(description: "\(path) has another version")
        }
        guard document["identity"] == identity else {
            throw CheckpointMismatch(description: "\(path) was made for another request, model, adapter or dataset")
        }
        guard let runs = document["runs"]?.arrayValue, runs.count == fresh.count else {
            throw CheckpointMismatch(description: "\(path) holds another number of runs")
        }
        let states = try zip(fresh, runs).map { fresh, run -> EvaluationRunState in
            guard run["adapter"] == (fresh.adapter.map { .string($0) } ?? .null),
                let completed = run["completed"]?.boolValue, let settings = run["settings"]?.objectValue,
                let samples = run["samples"]?.arrayValue
            else { throw CheckpointMismatch(description: "\(path) holds a malformed run") }
            var state = fresh
            state.completed = completed
            state.settings = try settings.mapValues { value in
                guard let text = value.stringValue else {
                    throw CheckpointMismatch(description: "\(path): bad settings")
                }
                return text
            }
            state.samples = try samples.map { try decode($0, path: path) }
            return state
        }
        let count = states.reduce(0) { $0 + $1.samples.count }
        if let done, Double(count) != done {
            throw CheckpointMismatch(description: "\(path) holds \(count) samples, the checkpoint says \(Int(done))")
        }
        return states
    }

    /// Removes the samples file once the job no longer needs it.
    static func remove(directory: String) {
        try? FileManager.default.removeItem(atPath: directory + "/" + fileName)
    }

    static func encode(_ sample: EvalSample) -> JSONValue {
        [
            "index": .number(Double(sample.index)), "id": sample.id.map { .string($0) } ?? .null,
            "input": .string(sample.input), "expected": .string(sample.expected), "output": .string(sample.output),
            // JSON has no inf/nan: those travel as text ("inf", "-inf", "nan"), which Double(_:) reads back
            "score": sample.score.isFinite ? .number(sample.score) : .string("\(sample.score)"),
            "details": .object(sample.details.mapValues { .string($0) }),
        ]
    }

    static func decode(_ value: JSONValue, path: String) throws -> EvalSample {
        let bad = CheckpointMismatch(description: "\(path) holds a malformed sample")
        guard let index = value["index"]?.doubleValue, index >= 0, index < 1e9, index == index.rounded(),
            let input = value["input"]?.stringValue, let expected = value["expected"]?.stringValue,
            let output = value["output"]?.stringValue, let detailValues = value["details"]?.objectValue
        else { throw bad }
        let score: Double
        switch value["score"] {
        case .number(let number)?: score = number
        case .string(let text)?:
            guard let number = Double(text) else { throw bad }
            score = number
        default: throw bad
        }
        let id: String?
        switch value["id"] {
        case .string(let text)?: id = text
        case .null?, nil: id = nil
        default: throw bad
        }
        let details = try detailValues.mapValues { detail -> String in
            guard let text = detail.stringValue else { throw bad }
            return text
        }
        return EvalSample(
            index: Int(index), id: id, input: input, expected: expected, output: output, score: score,
            details: details)
    }
}
