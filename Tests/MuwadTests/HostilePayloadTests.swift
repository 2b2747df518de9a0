// Payloads written by someone with nothing but the right to enqueue (issue 9): paths outside the daemon's
// roots, files whose contents must not reach the public `errors` column, symlinks out of a root, prompts
// over the per-job limit, and prompts that take long to tokenize — each fails once with a clear message,
// nothing leaks, and a ping job running beside them keeps its lease and succeeds on its first attempt.
import Foundation
import Storage
import XCTest
import TestSupport

final class HostilePayloadTests: XCTestCase {
    static let name = "muwa_t_hostile_payloads"

    func testPayloadPathsStayInsideTheRootsAndErrorsDoNotEchoFiles() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let fixtures = Harness.repositoryRoot.appendingPathComponent("Tests/Fixtures").path
        let model = fixtures + "/models/pre-ln-f32"
        // A data root of this test's own, holding PIQA examples, a "labels" file with a secret, and a
        // symlink that leads out of the root.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-roots-\(getpid())").path
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-outside-\(getpid())").path
        try? FileManager.default.removeItem(atPath: root)
        try? FileManager.default.removeItem(atPath: outside)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: outside)
        }
        try FileManager.default.copyItem(
            atPath: fixtures + "/eval/datasets/piqa/valid.jsonl", toPath: root + "/valid.jsonl")
        let secret = "PGPASSWORD=hunter2-\(getpid())"
        try (secret + "\n1\n0\n").write(toFile: root + "/notes.txt", atomically: true, encoding: .utf8)
        try "a line of wikitext\n".write(toFile: outside + "/wiki.raw", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(
            atPath: root + "/escape.raw", withDestinationPath: outside + "/wiki.raw")

        let cases: [(kind: String, payload: JSONValue, expected: String)] = [
            (
                "evaluate", ["model": .string(model), "task": "wikitext", "dataset": "/proc/self/environ"],
                "dataset.path: /proc/self/environ (which is /proc/"
            ),
            (
                "evaluate", ["model": .string(model), "task": "wikitext", "dataset": .string(root + "/escape.raw")],
                "is outside the directories this daemon may read data files from"
            ),
            (
                "evaluate",
                [
                    "model": .string(model), "task": "piqa",
                    "dataset": ["path": .string(root + "/valid.jsonl"), "labels": .string(root + "/notes.txt")],
                ],
                "notes.txt, line 1: a label must be 0 or 1, got something else"
            ),
            (
                "finetune", ["base_model": .string(model), "dataset": "/etc/passwd", "output": "x"],
                "dataset.path: /etc/passwd is outside the directories this daemon may read data files from"
            ),
            (
                "generate", ["model": .string(outside), "prompt": "hi"],
                "is outside the directories this daemon may read model files from"
            ),
            (
                "generate",
                [
                    "model": .string(model),
                    "prompts": .array(Array(repeating: .string(String(repeating: "b ", count: 100 << 10)), count: 8)),
                ],
                "more than this daemon takes in one job (1048576 bytes, MUWA_MAX_PROMPT_BYTES)"
            ),
            // Four prompts of 250 KiB without a space: one pre-token each, slow to merge. Within the limit,
            // too long for the 64-position model: the job fails on that, on its first attempt.
            (
                "generate",
                [
                    "model": .string(model),
                    "prompts": .array(Array(repeating: .string(String(repeating: "a", count: 250 << 10)), count: 4)),
                ],
                "positions, so nothing could be generated"
            ),
        ]
        var ids: [String] = []
        for (kind, payload, _) in cases {
            ids.append(
                try await database.scalar("SELECT muwa.enqueue($1, $2::jsonb)", [kind, payload.jsonText]) ?? "?")
        }
        let ping = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 4000}')"#) ?? "?"

        let daemon = try DaemonProcess(
            settings, name: "hostile", arguments: ["--concurrency", "3"],
            environment: ["MUWA_DATA_ROOTS": root + ":" + fixtures, "MUWA_MODEL_ROOTS": fixtures])
        try await eventually(120, daemon.log) {
            try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status IN ('queued', 'running')") == "0"
        }
        for (index, id) in ids.enumerated() {
            let row = try await database.firstRow(
                "SELECT status, attempt, errors::text AS errors, errors->0->>'message' AS message FROM muwa.jobs WHERE id = $1",
                [id])
            let message = try row.text("message") ?? "(none)"
            XCTAssertEqual(try row.string("status"), "failed", "case \(index): \(message)")
            XCTAssertEqual(try row.int("attempt"), 1, "case \(index) was retried: \(message)")
            XCTAssertTrue(
                message.contains(cases[index].expected),
                "case \(index): \"\(message)\" lacks \"\(cases[index].expected)\"")
            XCTAssertFalse(try row.string("errors").contains("hunter2"), "case \(index) leaked the file's contents")
        }
        let pingRow = try await database.firstRow("SELECT status, attempt FROM muwa.jobs WHERE id = $1", [ping])
        XCTAssertEqual(try pingRow.string("status"), "succeeded")
        XCTAssertEqual(try pingRow.int("attempt"), 1)
        let lost = try await database.scalar("SELECT count(*) FROM muwa.job_runs WHERE outcome = 'lost'")
        XCTAssertEqual(lost, "0", "a lease expired while the daemon tokenized: \(daemon.log)")
        XCTAssertTrue(daemon.isRunning)
        await daemon.stop()
    }
}
