// `muwad run`: one payload through the daemon's executor, no database. The generate outcome equals
// transformers' greedy continuation; a bad payload fails with exit status 1 and the executor's message; an
// unknown kind is refused with the list of kinds.
import Foundation
import XCTest

final class RunCommandTests: XCTestCase {
    private static let fixtures = Harness.repositoryRoot.appendingPathComponent("Tests/Fixtures")

    private func run(_ arguments: [String]) throws -> (status: Int32, report: [String: Any]?, output: String) {
        let result = try Harness.runMuwad(["run"] + arguments)
        let last = result.output.split(separator: "\n").last.map(String.init) ?? ""
        let report = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        return (result.status, report, result.output)
    }

    func testLongWorkPrintsProgressLinesWithAnETA() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-run-progress-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let result = try Harness.runMuwad(
            ["run", "--kind", "ping", "--payload", #"{"sleep_ms": 1500}"#, "--state-dir", state],
            environment: ["MUWA_PROGRESS_LOG_INTERVAL": "0.3"])
        XCTAssertEqual(result.status, 0, result.output)
        let lines = result.output.split(separator: "\n").filter { $0.contains(": progress ") }
        XCTAssertGreaterThanOrEqual(lines.count, 2, result.output)
        XCTAssertTrue(
            lines.contains { $0.contains("ETA ") && $0.contains("slept_ms ") && $0.contains("elapsed ") }, result.output
        )
    }

    func testJSONLogLinesAreObjects() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-run-json-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let result = try Harness.runMuwad(
            [
                "run", "--kind", "ping", "--payload", #"{"sleep_ms": 700}"#, "--state-dir", state, "--log-format",
                "json",
            ],
            environment: ["MUWA_PROGRESS_LOG_INTERVAL": "0.2"])
        XCTAssertEqual(result.status, 0, result.output)
        let logLines = result.output.split(separator: "\n").filter { $0.contains("\"level\"") }
        XCTAssertFalse(logLines.isEmpty, result.output)
        for line in logLines {
            let object = try XCTUnwrap(
                JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            XCTAssertNotNil(object["ts"] as? String)
            XCTAssertNotNil(object["message"] as? String)
        }
        let progress = try XCTUnwrap(logLines.first { $0.contains("progress ") }, result.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(progress.utf8)) as? [String: Any])
        XCTAssertEqual(object["kind"] as? String, "ping")
        XCTAssertEqual(object["level"] as? String, "notice")
    }

    func testGenerateMatchesTransformersGreedyAndBadInputFails() throws {
        let expected = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(
                    contentsOf:
                        Self.fixtures.appendingPathComponent("expected/pre-ln-f32/greedy.json"))) as? [String: Any])
        let first = try XCTUnwrap((expected["prompts"] as? [[String: Any]])?.first)
        let greedy = try XCTUnwrap((first["cases"] as? [String: [String: Any]])?["greedy"])
        let prompt = try XCTUnwrap(first["prompt"] as? String)
        let payload: [String: Any] = [
            "model": Self.fixtures.appendingPathComponent("models/pre-ln-f32").path, "prompt": prompt,
            "max_new_tokens": 12,
        ]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: payload), as: UTF8.self)
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-run-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: state) }

        let ok = try run(["--kind", "generate", "--payload", text, "--state-dir", state])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertEqual(ok.report?["status"] as? String, "succeeded", ok.output)
        let row = try XCTUnwrap((ok.report?["outputs"] as? [[String: Any]])?.first, ok.output)
        XCTAssertEqual(row["type"] as? String, "generation")
        XCTAssertEqual(row["token_ids"] as? [Int], greedy["generated_ids"] as? [Int])
        XCTAssertEqual(row["text"] as? String, greedy["text"] as? String)

        let bad = try run([
            "--kind", "generate", "--payload", #"{"model": "nowhere", "prompt": "hi"}"#, "--state-dir", state,
        ])
        XCTAssertEqual(bad.status, 1, bad.output)
        XCTAssertEqual(bad.report?["status"] as? String, "failed")
        XCTAssertTrue((bad.report?["error"] as? String ?? "").contains("no model called \"nowhere\""), bad.output)

        let unknown = try run(["--kind", "translate", "--payload", "{}", "--state-dir", state])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.output.contains("evaluate, finetune, generate, ping"), unknown.output)
    }
}
