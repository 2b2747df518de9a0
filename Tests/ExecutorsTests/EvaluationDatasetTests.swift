// Dataset readers against what Hugging Face's builders make of the same files (expected/datasets.json),
// and their errors: each names the file, and the line for line-oriented formats.
import Foundation
import XCTest

@testable import Evaluation
@testable import Executors

final class EvaluationDatasetTests: XCTestCase {
    func testSquadJSONAndExportGiveTheSplitInFileOrder() throws {
        let expected = try XCTUnwrap(try EvalFixtures.object("expected/datasets.json")["squad"] as? [String: Any])
        let original = try SquadDataset.load(path: EvalFixtures.dataset("squad/dev-v1.1.json"))
        let export = try SquadDataset.load(path: EvalFixtures.dataset("squad/validation.jsonl"))
        let directory = try SquadDataset.load(path: EvalFixtures.dataset("squad"))
        XCTAssertEqual(original.map(\.id), try XCTUnwrap(expected["ids"] as? [String]))
        XCTAssertEqual(original, export)
        XCTAssertEqual(original, directory)
        XCTAssertEqual(
            SquadDataset.subset(original, stride: 10).map(\.id), try XCTUnwrap(expected["mini_ids"] as? [String]))
        let first = try XCTUnwrap(expected["first"] as? [String: Any])
        let answers = try XCTUnwrap(first["answers"] as? [String: Any])
        XCTAssertEqual(original[0].question, first["question"] as? String)
        XCTAssertEqual(original[0].context, first["context"] as? String)
        XCTAssertEqual(original[0].title, first["title"] as? String)
        XCTAssertEqual(original[0].answers, answers["text"] as? [String])
        XCTAssertEqual(original[0].answerStarts, answers["answer_start"] as? [Int])
    }

    func testPIQAOriginalFilesAndExportAgree() throws {
        let rows = try XCTUnwrap(
            (try EvalFixtures.object("expected/datasets.json")["piqa"] as? [String: Any])?["rows"]
                as? [[String: Any]])
        let expected = try rows.map { r in
            PIQAExample(
                id: r["id"] as? String, goal: try XCTUnwrap(r["goal"] as? String),
                sol1: try XCTUnwrap(r["sol1"] as? String), sol2: try XCTUnwrap(r["sol2"] as? String),
                label: try XCTUnwrap(r["label"] as? Int))
        }
        let jsonl = EvalFixtures.dataset("piqa/valid.jsonl"), labels = EvalFixtures.dataset("piqa/valid-labels.lst")
        XCTAssertEqual(try PIQADataset.load(paths: [jsonl, labels]), expected)
        XCTAssertEqual(try PIQADataset.load(paths: [labels, jsonl]), expected)
        XCTAssertEqual(try PIQADataset.load(paths: [EvalFixtures.dataset("piqa")]), expected)
        XCTAssertEqual(try PIQADataset.load(paths: [jsonl]), expected)  // labels found beside it
        let export = try PIQADataset.load(paths: [EvalFixtures.dataset("piqa/validation.jsonl")])
        XCTAssertEqual(
            export, expected.map { PIQAExample(goal: $0.goal, sol1: $0.sol1, sol2: $0.sol2, label: $0.label) })
    }

    func testWikitextRowsAreHuggingFacesRows() throws {
        let doc = try EvalFixtures.object("expected/datasets.json")
        let wiki = try XCTUnwrap(doc["wikitext"] as? [String: Any])
        let rows = try XCTUnwrap(wiki["rows"] as? [String])
        let raw = try WikitextDataset.load(path: EvalFixtures.dataset("wikitext/wiki.test.raw"))
        XCTAssertEqual(raw.rows, rows)
        XCTAssertEqual(raw.joined.utf8.count, wiki["joined_utf8_bytes"] as? Int)
        XCTAssertEqual(try WikitextDataset.load(path: EvalFixtures.dataset("wikitext/test.jsonl")).rows, rows)
        XCTAssertEqual(try WikitextDataset.load(path: EvalFixtures.dataset("wikitext")).rows, rows)
        let newlines = try XCTUnwrap((doc["newlines"] as? [String: Any])?["rows"] as? [String])
        let mixed = try WikitextDataset.load(path: EvalFixtures.dataset("wikitext/newlines.raw")).rows
        XCTAssertEqual(mixed.map { Array($0.unicodeScalars) }, newlines.map { Array($0.unicodeScalars) })
    }

    // MARK: - errors

    private func write(_ dir: URL, _ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    private func assertError(
        _ expected: EvaluationError, _ body: () throws -> Void,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? EvaluationError, expected, "\(error)", file: file, line: line)
        }
    }

    func testMissingFilesAreNamed() {
        assertError(.missingFile(path: "/nonexistent/dev-v1.1.json")) {
            _ = try SquadDataset.load(path: "/nonexistent/dev-v1.1.json")
        }
        assertError(.missingFile(path: "/nonexistent/valid.jsonl")) {
            _ = try PIQADataset.load(paths: ["/nonexistent/valid.jsonl", "/x.lst"])
        }
        assertError(.missingFile(path: "/nonexistent/wiki.test.raw")) {
            _ = try WikitextDataset.load(path: "/nonexistent/wiki.test.raw")
        }
    }

    func testMalformedLinesNameFileAndLine() throws {
        let dir = try EvalFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let piqa = try write(
            dir, "valid.jsonl",
            "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n\n{\"goal\": \"g\", \"sol1\": \"a\"\n")
        let labels = try write(dir, "valid-labels.lst", "0\n1\n")
        XCTAssertThrowsError(try PIQADataset.load(paths: [piqa, labels])) { error in
            guard case .malformedLine(let path, let line, _)? = error as? EvaluationError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(path, piqa)
            XCTAssertEqual(line, 3)
            XCTAssertTrue("\(error)".hasPrefix("\(piqa), line 3: not valid JSON"), "\(error)")
        }
        let missingField = try write(dir, "b.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"label\": 0}\n")
        assertError(.malformedLine(path: missingField, line: 1, reason: "missing field \"sol2\"")) {
            _ = try PIQADataset.load(paths: [missingField])
        }
        let squad = try write(
            dir, "s.jsonl",
            "{\"id\": \"1\", \"context\": \"c\", \"question\": \"q\", \"answers\": {\"text\": [\"a\"]}}\n"
                + "{\"id\": \"2\", \"context\": \"c\", \"question\": 3, \"answers\": {\"text\": [\"a\"]}}\n")
        assertError(.malformedLine(path: squad, line: 2, reason: "field \"question\" must be a string")) {
            _ = try SquadDataset.load(path: squad)
        }
        let wiki = try write(dir, "w.jsonl", "{\"text\": \"a\"}\n[1]\n")
        assertError(.malformedLine(path: wiki, line: 2, reason: "expected a JSON object")) {
            _ = try WikitextDataset.load(path: wiki)
        }
        let badUTF8 = dir.appendingPathComponent("bad.raw")
        try Data([0x61, 0x0A, 0x62, 0x0D, 0x0A, 0xFF, 0x0A]).write(to: badUTF8)
        assertError(.malformedLine(path: badUTF8.path, line: 3, reason: "not valid UTF-8")) {
            _ = try WikitextDataset.load(path: badUTF8.path)
        }
    }

    func testLabelsAreCheckedLineByLineAndCounted() throws {
        let dir = try EvalFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let row = "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n"
        let jsonl = try write(dir, "valid.jsonl", row + row + row)
        let short = try write(dir, "short.lst", "0\n1\n\n")
        assertError(.labelCountMismatch(examplesPath: jsonl, examples: 3, labelsPath: short, labels: 2)) {
            _ = try PIQADataset.load(paths: [jsonl, short])
        }
        let bad = try write(dir, "bad.lst", "0\n2\n1\n")
        assertError(
            .malformedLine(
                path: bad, line: 2, reason: "a label must be 0 or 1, got something else (1 characters, not shown)")
        ) {
            _ = try PIQADataset.load(paths: [jsonl, bad])
        }
        let noLabels = try write(dir, "other.jsonl", row)
        XCTAssertThrowsError(try PIQADataset.load(paths: [noLabels])) { error in
            XCTAssertTrue("\(error)".contains("other-labels.lst"), "\(error)")
        }
    }

    func testMalformedSquadJSONNamesTheLocation() throws {
        let dir = try EvalFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let noQuestion = try write(
            dir, "a.json",
            #"{"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "1", "answers": []}]}]}]}"#)
        assertError(
            .malformedFile(
                path: noQuestion, location: "data[0].paragraphs[0].qas[0]", reason: "missing key \"question\"")
        ) {
            _ = try SquadDataset.load(path: noQuestion)
        }
        let noAnswers = try write(
            dir, "b.json",
            #"{"data": [{"title": "t", "paragraphs": [{"context": "c", "#
                + #""qas": [{"id": "7", "question": "q", "answers": []}]}]}]}"#
        )
        XCTAssertThrowsError(try SquadDataset.load(path: noAnswers)) { error in
            XCTAssertTrue(
                "\(error)".hasPrefix("\(noAnswers): data[0].paragraphs[0].qas[0]: question 7 has no answers"),
                "\(error)")
        }
        let truncated = try write(dir, "c.json", #"{"data": [{"#)
        XCTAssertThrowsError(try SquadDataset.load(path: truncated)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(truncated): not valid JSON"), "\(error)")
        }
    }

    func testEmptyDatasetsAreRejected() throws {
        let dir = try EvalFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let squad = try write(dir, "s.json", #"{"data": [], "version": "1.1"}"#)
        assertError(.emptyDataset(path: squad)) { _ = try SquadDataset.load(path: squad) }
        let wiki = try write(dir, "w.raw", " \n\t\n")
        assertError(.emptyDataset(path: wiki)) { _ = try WikitextDataset.load(path: wiki) }
        let piqa = try write(dir, "p.jsonl", "\n")
        assertError(.emptyDataset(path: piqa)) { _ = try PIQADataset.load(paths: [piqa]) }
    }

    func testUnknownTasksAndMethodsAreNamed() throws {
        XCTAssertThrowsError(try EvalTask(parsing: "mmlu")) { error in
            XCTAssertEqual("\(error)", "unknown evaluation task \"mmlu\"; known tasks: squad, piqa, wikitext")
        }
        XCTAssertThrowsError(try EvalMethod(parsing: "exact")) { error in
            XCTAssertEqual("\(error)", "unknown evaluation method \"exact\"; known methods: muwa, loglikelihood")
        }
        XCTAssertEqual(try EvalMethod(parsing: nil), .muwa)
        let evaluator = try EvalFixtures.evaluator("pre-ln-f32")
        assertError(.unsupported(task: "squad", method: "loglikelihood")) {
            _ = try evaluator.evaluate(
                task: "squad", method: "loglikelihood",
                dataset: [EvalFixtures.dataset("squad/dev-v1.1.json")])
        }
        assertError(.unknownTask("trivia")) { _ = try evaluator.evaluate(task: "trivia", method: nil, dataset: ["x"]) }
        assertError(.invalidRequest("limit must be at least 1, got 0")) {
            _ = try evaluator.evaluate(
                task: .piqa, dataset: [EvalFixtures.dataset("piqa")], options: EvalOptions(limit: 0))
        }
    }
}
