// kill -9 during a fine-tune: the daemon dies between checkpoints; a fresh daemon on the same box rescues
// the job once its lease expires, resumes from the newest checkpoint in the job's work directory, and ends
// with exactly the adapter of an uninterrupted run (`muwad run` of the same payload, no database). The
// training log keeps one row per logged step; the adapter is registered in muwa.adapters.
import Foundation
import Storage
import XCTest
import TestSupport

final class FineTuneCrashTests: XCTestCase {
    static let name = "muwa_t_ft_crash"

    func testKill9DuringFineTuneResumesToTheUninterruptedAdapter() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-ft-crash-\(getpid())").path
        try? FileManager.default.removeItem(atPath: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let state = scratch + "/state"
        try FileManager.default.createDirectory(atPath: state + "/models", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: state + "/models/tiny",
            withDestinationPath: Harness.repositoryRoot.appendingPathComponent("Tests/Fixtures/models/pre-ln-f32").path)
        let dataset = try DollyFile.write(records: 40, to: scratch + "/dolly.jsonl")
        let payload = """
            {"base_model": "tiny", "compute": "f32", "dataset": {"path": "\(dataset)", "eval_fraction": 0.1}, "output": "crashproof",
             "train": {"max_steps": 80, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
                       "warmup_steps": 10, "learning_rate": 0.005, "log_every": 5, "save_every": 10, "max_length": 64}}
            """
        let environment = ["MUWA_STATE_DIR": state]
        let first = try DaemonProcess(settings, name: "ft-crash-a", environment: environment)
        let id = try await database.scalar("SELECT muwa.enqueue('finetune', $1::jsonb)", [payload]) ?? ""
        let checkpoints = state + "/jobs/\(id)/checkpoints"
        try await eventually(60, first.log) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
            return names.contains {
                $0.hasPrefix("step-") && !$0.hasSuffix(".partial") && (Int($0.dropFirst(5)) ?? 0) >= 20
            }
        }
        first.signal(SIGKILL)
        let killed = await first.waitForExit(seconds: 5)
        XCTAssertEqual(killed, 128 + SIGKILL)
        let stepAtKill = try await database.scalar("SELECT max(step) FROM muwa.train_log WHERE job_id = $1", [id])
        let statusAtKill = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(statusAtKill, "running")

        let second = try DaemonProcess(settings, name: "ft-crash-b", environment: environment)
        try await eventually(120, second.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
        }
        await second.stop()
        XCTAssertTrue(second.log.contains("resuming from"), second.log)
        let attempt = try await database.scalar("SELECT attempt FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(attempt, "2")

        // The same payload, uninterrupted, without a database.
        let alone = scratch + "/alone"
        try FileManager.default.createDirectory(atPath: alone + "/models", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: alone + "/models/tiny", withDestinationPath: state + "/models/tiny")
        let run = try Harness.runMuwad(
            ["run", "--kind", "finetune", "--state-dir", alone, "--payload", payload], timeout: 120)
        XCTAssertEqual(run.status, 0, run.output)
        let resumed = FileManager.default.contents(atPath: state + "/adapters/crashproof@1/adapter_model.safetensors")
        let uninterrupted = FileManager.default.contents(
            atPath: alone + "/adapters/crashproof@1/adapter_model.safetensors")
        XCTAssertNotNil(resumed)
        XCTAssertEqual(resumed, uninterrupted, "killed at step ≈\(stepAtKill ?? "?") and resumed")

        // One training-log row per logged step (5, 10, …, 80), none lost with the killed process.
        let steps = try await database.column(
            "SELECT step::text AS s FROM muwa.train_log WHERE job_id = $1 ORDER BY step", [id])
        XCTAssertEqual(steps, (1...16).map { String($0 * 5) })
        let attempts = try await database.column(
            "SELECT DISTINCT attempt::text FROM muwa.train_log WHERE job_id = $1 ORDER BY 1", [id])
        XCTAssertEqual(attempts.last, "2", "the resumed attempt wrote rows (and re-wrote those a crash may have lost)")
        let adapter = try await database.firstRow(
            "SELECT base_model, path, job_id::text AS job, steps FROM muwa.adapters WHERE name = 'crashproof'")
        XCTAssertEqual(try adapter.string("base_model"), "tiny")
        XCTAssertEqual(try adapter.string("path"), state + "/adapters/crashproof@1")
        XCTAssertEqual(try adapter.string("job"), id)
        XCTAssertEqual(try adapter.int("steps"), 80)
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoints), "checkpoints are removed after success")
    }
}

/// A small databricks-dolly-15k-format file (instruction, context, response, category), deterministic.
enum DollyFile {
    static func write(records: Int, to path: String) throws -> String {
        let words = [
            "river", "mountain", "answer", "the", "a", "quick", "model", "data", "über", "naïve", "cat", "blue",
        ]
        var lines: [String] = []
        for i in 0..<records {
            let pick = { (n: Int, salt: Int) in
                (0..<n).map { words[($0 * 7 + i * 3 + salt) % words.count] }.joined(separator: " ")
            }
            let record: [String: String] = [
                "instruction": "Tell me about \(pick(3 + i % 4, 1)).", "context": i % 3 == 0 ? pick(5, 2) : "",
                "response": pick(2 + i % 7, 3), "category": i % 2 == 0 ? "open_qa" : "summarization",
            ]
            let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
            lines.append(String(decoding: data, as: UTF8.self))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
