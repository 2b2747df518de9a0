// The Muwa recipe end to end, through SQL only, against a real PostgreSQL and a real `muwad serve`: a LoRA
// fine-tune on a 200-record dolly-format file → evaluations of base vs adapter on SQuAD, PIQA and wikitext
// (files in their original formats) → generation with the adapter by name. Every results table and view is
// checked; then bad input (a malformed dataset line, an unknown adapter, an adapter for another base model,
// an unknown task) fails those jobs with clear messages while the daemon keeps serving.
import Foundation
import Storage
import XCTest
import TestSupport

final class RecipeEndToEndTests: XCTestCase {
    static let name = "muwa_t_recipe"

    func testFineTuneEvaluateGenerateThroughSQL() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let root = Harness.repositoryRoot.path
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-recipe-\(getpid())").path
        try? FileManager.default.removeItem(atPath: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let state = scratch + "/state"
        try FileManager.default.createDirectory(atPath: state + "/models", withIntermediateDirectories: true)
        for (name, fixture) in [("opt-tiny", "pre-ln-eval-f32"), ("opt-tiny-post-ln", "post-ln-f32")] {
            try FileManager.default.createSymbolicLink(
                atPath: state + "/models/" + name, withDestinationPath: root + "/Tests/Fixtures/models/" + fixture)
        }
        let daemon = try DaemonProcess(
            settings, name: "recipe", environment: ["MUWA_STATE_DIR": state, "MUWA_CONCURRENCY": "2"])

        // 1. Fine-tune (the notebook's settings, shortened: 12 steps).
        let finetune = try await enqueue(
            database, "finetune",
            """
            {"base_model": "opt-tiny", "dataset": {"path": "\(root)/Tests/Fixtures/finetune/dolly-200.jsonl",
             "eval_fraction": 0.05}, "output": "muwa-tiny",
             "train": {"max_steps": 12, "warmup_steps": 2, "learning_rate": 0.001, "log_every": 2, "save_every": 6,
                       "max_length": 128}}
            """)
        try await waitFor(database, [finetune], daemon)
        let adapterPath = try await database.scalar("SELECT path FROM muwa.adapters WHERE name = 'muwa-tiny'")
        XCTAssertEqual(adapterPath, state + "/adapters/muwa-tiny@1")
        let logged = try await database.scalar(
            "SELECT count(*) FROM muwa.train_log WHERE job_id = $1 AND loss IS NOT NULL AND learning_rate IS NOT NULL",
            [finetune])
        XCTAssertEqual(logged, "6")
        let evalLoss = try await database.scalar(
            "SELECT eval_loss FROM muwa.train_log WHERE job_id = $1 AND step = 12", [finetune])
        XCTAssertNotNil(evalLoss)

        // 2. Evaluate base vs adapter on the three tasks, and 3. generate with the adapter by name.
        let datasets = root + "/Tests/Fixtures/eval/datasets"
        var jobs: [String] = []
        for (task, path) in [
            ("squad", "squad/dev-v1.1.json"), ("piqa", "piqa/valid.jsonl"), ("wikitext", "wikitext/wiki.test.raw"),
        ] {
            jobs.append(
                try await enqueue(
                    database, "evaluate",
                    """
                    {"model": "opt-tiny", "adapter": "muwa-tiny", "task": "\(task)", "dataset": {"path": "\(datasets)/\(path)"},
                     "compare_base": true, "limit": 4}
                    """))
        }
        let generate = try await enqueue(
            database, "generate",
            """
            {"model": "opt-tiny", "adapter": "muwa-tiny", "template": "alpaca",
             "prompts": ["Tell me about rivers.", "Name a blue animal."], "max_new_tokens": 6}
            """)
        try await waitFor(database, jobs + [generate], daemon)

        let comparison = try await database.column(
            "SELECT task || ':' || metric FROM muwa.model_comparison WHERE adapter = 'muwa-tiny' AND base IS NOT NULL AND with_adapter IS NOT NULL ORDER BY 1"
        )
        let tasks = Set(comparison.compactMap { $0?.split(separator: ":").first.map(String.init) })
        XCTAssertEqual(tasks, ["piqa", "squad", "wikitext"], "\(comparison)")
        let samples = try await database.scalar(
            "SELECT count(DISTINCT task || coalesce(adapter, '-')) FROM muwa.eval_samples WHERE job_id = ANY ($1::bigint[])",
            ["{\(jobs.joined(separator: ","))}"])
        XCTAssertEqual(samples, "6", "samples for base and adapter on each task")
        let generations = try await database.column(
            "SELECT adapter || ' ' || completion_tokens FROM muwa.generations WHERE job_id = $1 ORDER BY idx",
            [generate])
        XCTAssertEqual(generations.count, 2)
        XCTAssertTrue(generations.allSatisfy { $0?.hasPrefix("muwa-tiny ") == true }, "\(generations)")

        // 4. Bad input fails the job, names the problem, and the daemon keeps serving.
        let bad: [(kind: String, payload: String, expect: String)] = [
            (
                "finetune", #"{"base_model": "opt-tiny", "dataset": {"path": "\#(scratch)/bad.jsonl"}, "output": "x"}"#,
                "line 2"
            ),
            (
                "evaluate",
                #"{"model": "opt-tiny", "adapter": "nobody", "task": "piqa", "dataset": {"path": "\#(datasets)/piqa/valid.jsonl"}}"#,
                "unknown adapter \"nobody\""
            ),
            ("generate", #"{"model": "opt-tiny-post-ln", "adapter": "muwa-tiny", "prompt": "Hi"}"#, "trained for"),
            (
                "evaluate",
                #"{"model": "opt-tiny", "task": "mmlu", "dataset": {"path": "\#(datasets)/piqa/valid.jsonl"}}"#, "mmlu"
            ),
        ]
        try "{\"instruction\": \"ok\", \"context\": \"\", \"response\": \"fine\", \"category\": \"x\"}\n{not json\n"
            .write(
                toFile: scratch + "/bad.jsonl", atomically: true, encoding: .utf8)
        var badJobs: [String] = []
        for entry in bad { badJobs.append(try await enqueue(database, entry.kind, entry.payload)) }
        let ping = try await enqueue(database, "ping", "{}")
        try await eventually(60, daemon.log) {
            let open = try await database.scalar(
                "SELECT count(*) FROM muwa.jobs WHERE id = ANY ($1::bigint[]) AND status NOT IN ('failed', 'succeeded')",
                ["{\((badJobs + [ping]).joined(separator: ","))}"])
            return open == "0"
        }
        for (index, entry) in bad.enumerated() {
            let row = try await database.firstRow(
                "SELECT status, attempt, errors->0->>'message' AS message FROM muwa.jobs WHERE id = $1",
                [badJobs[index]])
            XCTAssertEqual(try row.string("status"), "failed", entry.payload)
            XCTAssertEqual(try row.int("attempt"), 1, "not retried: \(entry.payload)")
            let message = try row.string("message")
            XCTAssertTrue(message.contains(entry.expect), "\(entry.expect) not in: \(message)")
        }
        let pingStatus = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [ping])
        XCTAssertEqual(pingStatus, "succeeded")
        let stillOne = try await database.scalar("SELECT count(*) FROM muwa.adapters")
        XCTAssertEqual(stillOne, "1", "nothing half registered")
        await daemon.stop()
    }

    private func enqueue(_ database: Database, _ kind: String, _ payload: String) async throws -> String {
        let id = try await database.scalar("SELECT muwa.enqueue($1, $2::jsonb)", [kind, payload])
        return try XCTUnwrap(id)
    }

    /// Waits until every job succeeded; fails with the first error message otherwise.
    private func waitFor(_ database: Database, _ ids: [String], _ daemon: DaemonProcess) async throws {
        let list = "{\(ids.joined(separator: ","))}"
        try await eventually(300, daemon.log) {
            let open = try await database.scalar(
                "SELECT count(*) FROM muwa.jobs WHERE id = ANY ($1::bigint[]) AND status IN ('queued', 'running')",
                [list])
            return open == "0"
        }
        let failures = try await database.column(
            "SELECT id || ' ' || status || ': ' || coalesce(errors::text, '') FROM muwa.jobs WHERE id = ANY ($1::bigint[]) AND status <> 'succeeded'",
            [list])
        XCTAssertEqual(failures, [], daemon.log)
    }
}
