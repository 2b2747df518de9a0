// PIQADataset: PIQA examples from the original release — `valid.jsonl` (goal, sol1, sol2 per line) and
// `valid-labels.lst` (one 0/1 label per line, same order) — or from a JSONL export with a `label` field
// per line. The dataset path may be the directory holding both original files, the two files, or one
// JSONL file (with labels inline, or with its `<name>-labels.lst` beside it).
import Foundation

public struct PIQAExample: Sendable, Equatable {
    public var id: String?
    public var goal: String
    public var sol1: String
    public var sol2: String
    /// 0 when sol1 is correct, 1 when sol2 is.
    public var label: Int

    public init(id: String? = nil, goal: String, sol1: String, sol2: String, label: Int) {
        self.id = id
        self.goal = goal
        self.sol1 = sol1
        self.sol2 = sol2
        self.label = label
    }
}

public enum PIQADataset {
    public static func load(paths: [String]) throws -> [PIQAExample] {
        let (examplesPath, labelsPath) = try resolve(paths)
        let examples = try loadExamples(examplesPath, labelsPath: labelsPath)
        guard !examples.isEmpty else { throw EvaluationError.emptyDataset(path: examplesPath) }
        return examples
    }

    /// (solutions file, labels file or nil when labels are inline).
    static func resolve(_ paths: [String]) throws -> (String, String?) {
        switch paths.count {
        case 1 where DatasetFiles.isDirectory(paths[0]):
            return (DatasetFiles.join(paths[0], "valid.jsonl"), DatasetFiles.join(paths[0], "valid-labels.lst"))
        case 1:
            return (paths[0], nil)
        case 2:
            let isLabels = paths.map { DatasetFiles.hasExtension($0, ["lst", "txt"]) }
            if isLabels[1] && !isLabels[0] { return (paths[0], paths[1]) }
            if isLabels[0] && !isLabels[1] { return (paths[1], paths[0]) }
            throw EvaluationError.invalidRequest(
                "PIQA takes a .jsonl file and its labels file (.lst); got \(paths[0]) and \(paths[1])")
        default:
            throw EvaluationError.invalidRequest(
                "PIQA takes a directory, a JSONL file, or a JSONL file and its labels file; got \(paths.count) paths")
        }
    }

    static func loadExamples(_ path: String, labelsPath: String?) throws -> [PIQAExample] {
        let records = try DatasetFiles.jsonObjects(path).map {
            JSONRecord(path: path, line: $0.line, object: $0.object)
        }
        var labels: [Int]?
        var labelsFile = labelsPath
        if let labelsPath {
            labels = try loadLabels(labelsPath)
        } else if let first = records.first, first.object["label"] == nil {
            // No inline labels: the original layout keeps them in "<name>-labels.lst".
            let sibling = URL(fileURLWithPath: path).deletingPathExtension().path + "-labels.lst"
            guard FileManager.default.fileExists(atPath: sibling) else {
                throw first.fail("no \"label\" field, and no labels file \(sibling) beside it")
            }
            labels = try loadLabels(sibling)
            labelsFile = sibling
        }
        if let labels, labels.count != records.count {
            throw EvaluationError.labelCountMismatch(
                examplesPath: path, examples: records.count,
                labelsPath: labelsFile ?? path, labels: labels.count)
        }
        return try records.enumerated().map { index, record in
            PIQAExample(
                id: try record.optionalString("id"), goal: try record.string("goal"),
                sol1: try record.string("sol1"), sol2: try record.string("sol2"),
                label: try labels?[index] ?? record.label("label"))
        }
    }

    /// One label per line ("0" or "1", surrounding whitespace allowed); blank lines at the end are ignored.
    static func loadLabels(_ path: String) throws -> [Int] {
        var lines = try DatasetFiles.lines(path)
        while let last = lines.last, PythonText.strip(PythonText.scalars(last.text)).isEmpty { lines.removeLast() }
        return try lines.map { line in
            switch PythonText.string(PythonText.strip(PythonText.scalars(line.text))) {
            case "0": return 0
            case "1": return 1
            case let other:
                // The line itself is not quoted: a payload may point at any file, and errors are public.
                throw EvaluationError.malformedLine(
                    path: path, line: line.number,
                    reason: "a label must be 0 or 1, got something else (\(other.count) characters, not shown)")
            }
        }
    }
}
