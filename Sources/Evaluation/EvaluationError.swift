// EvaluationError: every way an evaluation request or its dataset can be wrong. Messages name the file
// and, for line-oriented formats, the 1-based line, so a job's error says exactly what to fix.
import Foundation

public enum EvaluationError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// A dataset file that should exist does not (or cannot be read).
    case missingFile(path: String)
    /// A line of a line-oriented file (JSONL, labels, raw text) is malformed.
    case malformedLine(path: String, line: Int, reason: String)
    /// A whole-file format (SQuAD JSON) is malformed; `location` is a JSON path such as `data[2].paragraphs[0]`.
    case malformedFile(path: String, location: String, reason: String)
    /// The dataset holds no examples (after subsetting and `limit`).
    case emptyDataset(path: String)
    /// PIQA's solutions file and labels file hold different numbers of examples.
    case labelCountMismatch(examplesPath: String, examples: Int, labelsPath: String, labels: Int)
    case unknownTask(String)
    case unknownMethod(String)
    /// A method this task does not have (e.g. loglikelihood for SQuAD).
    case unsupported(task: String, method: String)
    /// A bad option or dataset path list.
    case invalidRequest(String)
    /// An example's prompt does not fit in the model's positions.
    case exampleTooLong(index: Int, tokens: Int, positions: Int)

    public var description: String {
        switch self {
        case .missingFile(let path):
            return "dataset file not found: \(path)"
        case .malformedLine(let path, let line, let reason):
            return "\(path), line \(line): \(reason)"
        case .malformedFile(let path, let location, let reason):
            return location.isEmpty ? "\(path): \(reason)" : "\(path): \(location): \(reason)"
        case .emptyDataset(let path):
            return "\(path): the dataset has no examples"
        case .labelCountMismatch(let examplesPath, let examples, let labelsPath, let labels):
            return "\(examplesPath) has \(examples) examples but \(labelsPath) has \(labels) labels"
        case .unknownTask(let task):
            return "unknown evaluation task \"\(task)\"; known tasks: "
                + EvalTask.allCases.map(\.rawValue).joined(separator: ", ")
        case .unknownMethod(let method):
            return "unknown evaluation method \"\(method)\"; known methods: "
                + EvalMethod.allCases.map(\.rawValue).joined(separator: ", ")
        case .unsupported(let task, let method):
            return "the \(task) task has no \(method) method"
        case .invalidRequest(let message):
            return "invalid evaluation request: \(message)"
        case .exampleTooLong(let index, let tokens, let positions):
            return "example \(index) needs \(tokens) positions (prompt and new tokens); the model has \(positions)"
        }
    }

    public var errorDescription: String? { description }
}
