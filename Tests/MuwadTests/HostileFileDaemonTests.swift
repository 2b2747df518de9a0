// Hostile checkpoint and adapter files (Tests/Fixtures/hostile, made by tools/fixtures/make_hostile_fixtures.py)
// named in generate jobs: each used to crash, exhaust or freeze the daemon. Now each job fails once with a
// message naming what is wrong, a ping job beside them succeeds, no lease is lost and the daemon runs on.
import Foundation
import Storage
import XCTest
import TestSupport

final class HostileFileDaemonTests: XCTestCase {
    static let name = "muwa_t_hostile_files"

    func testHostileFilesFailTheirJobsAndTheDaemonServesOn() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let fixtures = Harness.repositoryRoot.appendingPathComponent("Tests/Fixtures").path
        let hostile = fixtures + "/hostile"
        let model = fixtures + "/models/pre-ln-f32"
        let cases: [(payload: JSONValue, expected: [String])] = [
            (["model": .string(hostile + "/bin-wrap"), "prompt": "hi"], ["pytorch_model.bin", "'w'"]),
            // The tiny weights cannot match 4M positions; a file that did is refused by the memory budget
            // (MemoryBudgetTests.testHugePositionsAreRefusedAtLoad, a 32 MiB checkpoint built in the test).
            (
                ["model": .string(hostile + "/huge-positions"), "prompt": "hi"],
                ["embed_positions", "expected [4194304, 16]"]
            ),
            (["model": .string(hostile + "/safetensors-header"), "prompt": "hi"], ["model.safetensors", "header"]),
            (
                ["model": .string(model), "prompt": "hi", "adapter": .string(hostile + "/adapter-huge-r")],
                ["adapter", "16384"]
            ),
            (["model": .string(model), "prompt": "hi", "adapter": .string(hostile + "/adapter-regex")], ["adapter"]),
        ]
        var ids: [String] = []
        for (payload, _) in cases {
            ids.append(
                try await database.scalar("SELECT muwa.enqueue('generate', $1::jsonb)", [payload.jsonText]) ?? "?")
        }
        let ping = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 1500}')"#) ?? "?"
        let daemon = try DaemonProcess(
            settings, name: "hostile-files", arguments: ["--concurrency", "3"],
            environment: ["MUWA_MEMORY_LIMIT": "1GiB"])
        try await eventually(90, daemon.log) {
            try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status IN ('queued', 'running')") == "0"
        }
        for (index, id) in ids.enumerated() {
            let row = try await database.firstRow(
                "SELECT status, attempt, errors->0->>'message' AS message FROM muwa.jobs WHERE id = $1", [id])
            let message = try row.text("message") ?? "(none)"
            XCTAssertEqual(try row.string("status"), "failed", "case \(index): \(message)")
            XCTAssertEqual(try row.int("attempt"), 1, "case \(index) was retried: \(message)")
            for fragment in cases[index].expected {
                XCTAssertTrue(message.contains(fragment), "case \(index): \"\(message)\" lacks \"\(fragment)\"")
            }
        }
        let pingRow = try await database.firstRow("SELECT status, attempt FROM muwa.jobs WHERE id = $1", [ping])
        XCTAssertEqual(try pingRow.string("status"), "succeeded")
        XCTAssertEqual(try pingRow.int("attempt"), 1)
        let lost = try await database.scalar("SELECT count(*) FROM muwa.job_runs WHERE outcome = 'lost'")
        XCTAssertEqual(lost, "0", daemon.log)
        XCTAssertTrue(daemon.isRunning, daemon.log)
        await daemon.stop()
    }
}
