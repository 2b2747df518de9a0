// WikitextDataset: wikitext rows as Hugging Face's `wikitext` builder yields them from a raw file
// (wiki.test.raw): each line of the file with its newline kept ("\r\n" and "\r" read as "\n"), and a
// line of only whitespace as the empty row "". A JSONL export with a `text` field per line gives the rows
// as they are. The evaluation joins the rows with "\n\n" and tokenizes the result once.
import Foundation

public struct WikitextDataset: Sendable, Equatable {
    public var rows: [String]

    public init(rows: [String]) {
        self.rows = rows
    }

    /// The text the evaluation scores: the rows joined with "\n\n".
    public var joined: String { rows.joined(separator: "\n\n") }

    /// A raw file, or a `.jsonl`/`.ndjson` export; a directory is searched for wiki.test.raw.
    public static func load(path: String) throws -> WikitextDataset {
        var file = path
        if DatasetFiles.isDirectory(path) { file = DatasetFiles.join(path, "wiki.test.raw") }
        let rows: [String]
        if DatasetFiles.hasExtension(file, ["jsonl", "ndjson"]) {
            rows = try DatasetFiles.jsonObjects(file).map { line, object in
                try JSONRecord(path: file, line: line, object: object).string("text")
            }
        } else {
            rows = try DatasetFiles.lines(file).map { line in
                PythonText.strip(PythonText.scalars(line.text)).isEmpty ? "" : line.text
            }
        }
        guard rows.contains(where: { !$0.isEmpty }) else { throw EvaluationError.emptyDataset(path: file) }
        return WikitextDataset(rows: rows)
    }
}
