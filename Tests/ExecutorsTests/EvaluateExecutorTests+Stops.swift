// EvaluateExecutorTests, continued: bad payloads and datasets fail permanently with the message that says
// what to fix; a stop at shutdown releases the job with a checkpoint, and the resumed attempts end with
// exactly the rows and metrics of one uninterrupted run; a cancel keeps the samples done.
import Foundation
import Storage
import XCTest

@testable import Executors
@testable import JobQueue

extension EvaluateExecutorTests {
    func testBadPayloadsFailPermanentlyNamingTheField() async throws {
        let piqa: JSONValue = ["path": .string(piqaDirectory)]
        let cases: [(JSONValue, String)] = [
            (
                ["model": .string(model), "task": "sqad", "dataset": .string(squad)],
                "invalid evaluate payload: unknown evaluation task \"sqad\"; known tasks: squad, piqa, wikitext"
            ),
            (["model": .string(model), "dataset": .string(squad)], "task is required: one of squad, piqa, wikitext"),
            (
                ["model": .string(model), "task": "piqa", "method": "bleu", "dataset": piqa],
                "unknown evaluation method \"bleu\"; known methods: muwa, loglikelihood"
            ),
            (
                ["model": .string(model), "task": "squad", "method": "loglikelihood", "dataset": .string(squad)],
                "the squad task has no loglikelihood method"
            ),
            (
                ["model": .string(model), "task": "piqa", "compare_base": true, "dataset": piqa],
                "compare_base needs an adapter"
            ),
            (
                ["model": .string(model), "task": "piqa", "dataset": piqa, "max_tokens": 3],
                "unknown field \"max_tokens\""
            ),
            (["model": .string(model), "task": "piqa", "dataset": ["file": "x"]], "unknown field \"dataset.file\""),
            (["model": .string(model), "task": "piqa", "dataset": 3], "dataset must be a JSON object, got number"),
            (["model": .string(model), "task": "piqa"], "dataset is required: {\"path\": …}"),
            (
                ["model": .string(model), "task": "squad", "dataset": ["path": .string(squad), "labels": "l.lst"]],
                "dataset.labels applies to the piqa task only"
            ),
            (
                ["model": .string(model), "task": "squad", "dataset": .string(squad), "max_length": 64],
                "max_length applies only to the wikitext task"
            ),
            (
                [
                    "model": .string(model), "task": "piqa", "method": "loglikelihood", "dataset": piqa,
                    "max_new_tokens": 8,
                ],
                "max_new_tokens applies only to generation (method muwa on squad or piqa)"
            ),
            (
                ["model": .string(model), "task": "piqa", "dataset": piqa, "limit": 0],
                "limit must be a whole number from 1 to 100000000, got 0"
            ),
            (
                ["model": .string(model), "task": "piqa", "dataset": piqa, "compare_base": "yes"],
                "compare_base must be true or false, got string"
            ),
            (["task": "piqa", "dataset": piqa], "model is required"),
            (["model": "no-such-model", "task": "piqa", "dataset": piqa], "model: no model called \"no-such-model\""),
            (
                ["model": .string(model), "adapter": "nope", "task": "piqa", "dataset": piqa],
                "unknown adapter \"nope\""
            ),
            (
                [
                    "model": .string(model),
                    "adapter": .string(EvalFixtures.fixtures.path + "/lora/adapters/pre-ln-qv"),
                    "task": "piqa", "dataset": piqa,
                ], "cannot be used with"
            ),
        ]
        for (payload, fragment) in cases {
            await assertFails(payload, fragment)
        }
    }

    func testBadDatasetsFailWithTheLibrarysMessage() async throws {
        let dir = state.path
        let missing = dir + "/missing/dev-v1.1.json"
        await assertFails(
            ["model": .string(model), "task": "squad", "dataset": .string(missing)],
            "dataset.path: \(missing) does not exist")

        let broken = dir + "/broken.jsonl"
        try Data("{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n{not json\n".utf8)
            .write(to: URL(fileURLWithPath: broken))
        await assertFails(
            ["model": .string(model), "task": "piqa", "dataset": .string(broken)], "\(broken), line 2: not valid JSON")

        let examples = dir + "/valid.jsonl", labels = dir + "/labels.lst"
        try Data(String(repeating: "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n", count: 2).utf8)
            .write(to: URL(fileURLWithPath: examples))
        try Data("0\n7\n".utf8).write(to: URL(fileURLWithPath: labels))
        await assertFails(
            [
                "model": .string(model), "task": "piqa",
                "dataset": ["path": .string(examples), "labels": .string(labels)],
            ],
            "\(labels), line 2: a label must be 0 or 1, got something else (1 characters, not shown)")
        try Data("0\n".utf8).write(to: URL(fileURLWithPath: labels))
        await assertFails(
            [
                "model": .string(model), "task": "piqa",
                "dataset": ["path": .string(examples), "labels": .string(labels)],
            ],
            "\(examples) has 2 examples but \(labels) has 1 labels")

        let empty = dir + "/empty.jsonl"
        try Data().write(to: URL(fileURLWithPath: empty))
        await assertFails(
            ["model": .string(model), "task": "squad", "dataset": .string(empty)],
            "\(empty): the dataset has no examples")
        await assertFails(
            ["model": .string(model), "task": "wikitext", "dataset": .string(empty)],
            "\(empty): the dataset has no examples")

        // pre-ln-f32 has 64 positions: a SQuAD prompt and 32 new tokens do not fit
        await assertFails(
            ["model": .string(EvalFixtures.model("pre-ln-f32")), "task": "squad", "dataset": .string(squad)],
            "example 0 needs")
    }

    func testStopsAtShutdownResumeToTheSameResults() async throws {
        let wikitextPayload: JSONValue = [
            "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "wikitext",
            "method": "loglikelihood", "dataset": .string(wikitext), "max_length": 32, "stride": 16,
        ]
        let squadPayload: JSONValue = [
            "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "squad",
            "dataset": .string(squad),
        ]
        for (payload, stops) in [(wikitextPayload, [0.2, 0.7]), (squadPayload, [0.3, 0.6])] {
            let (once, onceRows) = try await succeed(payload)
            var checkpoint: JSONValue?
            var done = 0.0
            for fraction in stops {
                let outcome = try await run(payload, checkpoint: checkpoint, stopAt: fraction, reason: .shuttingDown)
                guard case .stopped(let partial?, let outputs, let saved?) = outcome else {
                    return XCTFail("expected a stop with a checkpoint at \(fraction), got \(outcome)")
                }
                XCTAssertEqual(outputs, [])
                XCTAssertEqual(partial["completed"], false)
                let now = try XCTUnwrap(saved["done"]?.doubleValue)
                XCTAssertGreaterThan(now, done, "\(fraction)")
                done = now
                checkpoint = saved
            }
            let samplesFile = try XCTUnwrap(checkpoint?["samples_file"]?.stringValue)
            let (resumed, resumedRows) = try await succeed(payload, checkpoint: checkpoint)
            XCTAssertEqual(resumedRows, onceRows)
            XCTAssertEqual(resumed["metrics"], once["metrics"])
            XCTAssertEqual(resumed["n"], once["n"])
            XCTAssertEqual(resumed["resumed_after"]?.doubleValue, done)
            XCTAssertFalse(FileManager.default.fileExists(atPath: samplesFile), "the samples file is removed")

            // A checkpoint whose file is gone or unreadable: start over, same results.
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: samplesFile))
            let (again, againRows) = try await succeed(payload, checkpoint: checkpoint)
            XCTAssertEqual(againRows, onceRows)
            XCTAssertNil(again["resumed_after"])
        }
    }

    func testPeriodicSavesLetAnAttemptAfterACrashResume() async throws {
        let payload: JSONValue = [
            "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "wikitext",
            "method": "loglikelihood", "dataset": .string(wikitext), "max_length": 32, "stride": 16,
        ]
        let (once, onceRows) = try await succeed(payload)
        // Saves every few milliseconds; the attempt then loses its lease (as when its worker is killed): it
        // writes nothing at the stop, and the job row has no checkpoint for the next attempt.
        let context = makeContext(payload, checkpoint: nil)
        let executor = EvaluateJobExecutor(environment: environment, checkpointSeconds: 0.002)
        let watcher = Task {
            while !Task.isCancelled {
                if (context.progress ?? 0) >= 0.6 {
                    context.requestStop(.leaseLost)
                    return
                }
                try? await Task.sleep(for: .microseconds(50))
            }
        }
        let outcome = try await executor.execute(context.job, context: context)
        watcher.cancel()
        guard case .stopped = outcome else { return XCTFail("expected a stop, got \(outcome)") }
        let file = state.appendingPathComponent("jobs/1/\(EvaluateCheckpoint.fileName)").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: file), "a periodic save is left behind")

        let (resumed, resumedRows) = try await succeed(payload)
        XCTAssertGreaterThan(resumed["resumed_after"]?.doubleValue ?? 0, 0)
        XCTAssertEqual(resumedRows, onceRows)
        XCTAssertEqual(resumed["metrics"], once["metrics"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: file), "the samples file is removed")
    }

    func testACheckpointOfAnotherRequestIsNotUsed() async throws {
        let payload: JSONValue = [
            "model": .string(model), "task": "piqa", "method": "loglikelihood", "dataset": .string(piqaDirectory),
        ]
        let outcome = try await run(payload, checkpoint: nil, stopAt: 0.3, reason: .shuttingDown)
        guard case .stopped(_, _, let checkpoint?) = outcome else { return XCTFail("\(outcome)") }
        var other = try XCTUnwrap(payload.objectValue)
        other["limit"] = 12
        let (result, rows) = try await succeed(.object(other), checkpoint: checkpoint)
        XCTAssertNil(result["resumed_after"])
        XCTAssertEqual(Self.samples(rows, adapter: nil).count, 12)
        XCTAssertEqual(result["n"], 12)
    }

    func testCancelKeepsTheSamplesDone() async throws {
        let payload: JSONValue = [
            "model": .string(model), "task": "wikitext", "dataset": .string(wikitext), "max_length": 32, "stride": 16,
        ]
        let outcome = try await run(payload, checkpoint: nil, stopAt: 0.3, reason: .cancelRequested)
        guard case .stopped(let partial?, let outputs, let checkpoint) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertNil(checkpoint)
        XCTAssertFalse(outputs.isEmpty)
        XCTAssertLessThan(outputs.count, 40)
        XCTAssertTrue(outputs.allSatisfy { $0["type"] == "eval_sample" })
        XCTAssertEqual(partial["completed"], false)
        XCTAssertEqual(partial["done"]?.doubleValue, Double(outputs.count))
        XCTAssertNotNil(partial["metrics"]?["perplexity"]?.doubleValue)
        let file = state.appendingPathComponent("jobs/1/\(EvaluateCheckpoint.fileName)").path
        XCTAssertFalse(FileManager.default.fileExists(atPath: file))
    }

    // MARK: - Helpers

    func assertFails(_ payload: JSONValue, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) async
    {
        do {
            let outcome = try await execute(payload)
            XCTFail("expected a failure containing \"\(fragment)\", got \(outcome)", file: file, line: line)
        } catch let failure as JobFailure {
            XCTAssertFalse(failure.retryable, failure.message, file: file, line: line)
            XCTAssertTrue(
                failure.message.contains(fragment), "\"\(failure.message)\" lacks \"\(fragment)\"", file: file,
                line: line)
        } catch {
            XCTFail("expected a JobFailure, got \(error)", file: file, line: line)
        }
    }

    /// Runs the job, asking it to stop (for `reason`) from inside the first progress report that reaches
    /// `fraction` (JobContext.stopWhenProgress: on the evaluation thread, at a known point).
    func run(_ payload: JSONValue, checkpoint: JSONValue?, stopAt fraction: Double, reason: StopReason) async throws
        -> JobOutcome
    {
        let context = makeContext(payload, checkpoint: checkpoint)
        context.stopWhenProgress(reaches: fraction, reason: reason)
        return try await EvaluateJobExecutor(environment: environment).execute(context.job, context: context)
    }
}
