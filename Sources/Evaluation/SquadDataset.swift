// SquadDataset: SQuAD v1.1 questions in file order (data → paragraphs → qas, as Hugging Face's `squad`
// split has them), from the original JSON (dev-v1.1.json) or a JSONL export of the split's fields
// (id, title, context, question, answers {text, answer_start} or [{text, answer_start}]). "SQuAD mini"
// is every 10th question starting at the first.
import Foundation

public struct SquadExample: Sendable, Equatable {
    public var id: String
    public var title: String
    public var context: String
    public var question: String
    /// Gold answers in file order (duplicates kept, as the dataset has them).
    public var answers: [String]
    public var answerStarts: [Int]

    public init(
        id: String, title: String = "", context: String, question: String, answers: [String],
        answerStarts: [Int] = []
    ) {
        self.id = id
        self.title = title
        self.context = context
        self.question = question
        self.answers = answers
        self.answerStarts = answerStarts
    }
}

public enum SquadDataset {
    /// Every question of a SQuAD file: `.jsonl`/`.ndjson` is read as an export, anything else as the
    /// original JSON. A directory is searched for dev-v1.1.json.
    public static func load(path: String) throws -> [SquadExample] {
        var file = path
        if DatasetFiles.isDirectory(path) { file = DatasetFiles.join(path, "dev-v1.1.json") }
        let examples = DatasetFiles.hasExtension(file, ["jsonl", "ndjson"]) ? try loadJSONL(file) : try loadJSON(file)
        guard !examples.isEmpty else { throw EvaluationError.emptyDataset(path: file) }
        return examples
    }

    /// Questions `start`, `start + stride`, … (stride 10 = SQuAD mini).
    public static func subset(_ examples: [SquadExample], stride: Int) -> [SquadExample] {
        Swift.stride(from: 0, to: examples.count, by: max(stride, 1)).map { examples[$0] }
    }

    // MARK: - original JSON

    private struct File: Decodable { var data: [Article] }
    private struct Article: Decodable {
        var title: String?
        var paragraphs: [Paragraph]
    }
    private struct Paragraph: Decodable {
        var context: String
        var qas: [QA]
    }
    private struct QA: Decodable {
        var id: String
        var question: String
        var answers: [Answer]
    }
    private struct Answer: Decodable {
        var text: String
        var answerStart: Int?
        enum CodingKeys: String, CodingKey {
            case text
            case answerStart = "answer_start"
        }
    }

    static func loadJSON(_ path: String) throws -> [SquadExample] {
        let data = Data(try DatasetFiles.bytes(path))
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch let error as DecodingError {
            throw describe(error, path: path)
        }
        var out: [SquadExample] = []
        for (a, article) in file.data.enumerated() {
            for (p, paragraph) in article.paragraphs.enumerated() {
                for (q, qa) in paragraph.qas.enumerated() {
                    guard !qa.answers.isEmpty else {
                        throw EvaluationError.malformedFile(
                            path: path, location: "data[\(a)].paragraphs[\(p)].qas[\(q)]",
                            reason:
                                "question \(qa.id) has no answers (SQuAD v2 unanswerable questions are not supported)")
                    }
                    out.append(
                        SquadExample(
                            id: qa.id, title: article.title ?? "", context: paragraph.context,
                            question: qa.question, answers: qa.answers.map(\.text),
                            answerStarts: qa.answers.map { $0.answerStart ?? -1 }))
                }
            }
        }
        return out
    }

    private static func describe(_ error: DecodingError, path: String) -> EvaluationError {
        func location(_ codingPath: [CodingKey]) -> String {
            var out = ""
            for key in codingPath {
                if let index = key.intValue {
                    out += "[\(index)]"
                } else {
                    out += (out.isEmpty ? "" : ".") + key.stringValue
                }
            }
            return out
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .malformedFile(
                path: path, location: location(context.codingPath),
                reason: "missing key \"\(key.stringValue)\"")
        case .typeMismatch(let type, let context):
            return .malformedFile(path: path, location: location(context.codingPath), reason: "expected \(type)")
        case .valueNotFound(let type, let context):
            return .malformedFile(
                path: path, location: location(context.codingPath), reason: "expected \(type), got null")
        case .dataCorrupted(let context):
            let underlying = context.underlyingError.map { DatasetFiles.jsonReason($0) } ?? context.debugDescription
            return .malformedFile(
                path: path, location: location(context.codingPath), reason: "not valid JSON (\(underlying))")
        @unknown default:
            return .malformedFile(path: path, location: "", reason: "\(error)")
        }
    }

    // MARK: - JSONL export

    static func loadJSONL(_ path: String) throws -> [SquadExample] {
        try DatasetFiles.jsonObjects(path).map { line, object in
            let record = JSONRecord(path: path, line: line, object: object)
            let (answers, starts) = try answerFields(record)
            guard !answers.isEmpty else { throw record.fail("the question has no answers") }
            return SquadExample(
                id: try record.optionalString("id") ?? "line-\(line)",
                title: try record.optionalString("title") ?? "",
                context: try record.string("context"), question: try record.string("question"),
                answers: answers, answerStarts: starts)
        }
    }

    /// `answers` as Hugging Face exports it ({"text": [...], "answer_start": [...]}) or as the original
    /// JSON has it ([{"text": ..., "answer_start": ...}]).
    private static func answerFields(_ record: JSONRecord) throws -> ([String], [Int]) {
        guard let value = record.object["answers"] else { throw record.fail("missing field \"answers\"") }
        if let columns = value as? [String: Any] {
            guard let texts = columns["text"] as? [Any] else {
                throw record.fail("answers.text must be a list of strings")
            }
            let strings = try texts.map { item -> String in
                guard let text = item as? String else { throw record.fail("answers.text must be a list of strings") }
                return text
            }
            let starts = (columns["answer_start"] as? [Any])?.map { ($0 as? Int) ?? -1 } ?? strings.map { _ in -1 }
            return (strings, starts)
        }
        if let rows = value as? [Any] {
            var texts: [String] = [], starts: [Int] = []
            for (i, row) in rows.enumerated() {
                guard let answer = row as? [String: Any], let text = answer["text"] as? String else {
                    throw record.fail("answers[\(i)] must be an object with a string \"text\"")
                }
                texts.append(text)
                starts.append((answer["answer_start"] as? Int) ?? -1)
            }
            return (texts, starts)
        }
        throw record.fail("answers must be {\"text\": [...]} or a list of {\"text\": ...}")
    }
}
