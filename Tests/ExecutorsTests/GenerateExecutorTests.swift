// The `generate` executor end to end without a database: payloads in, `generation` rows out, each row's
// text what the engine gives alone; models and adapters by name from a state directory; two jobs running at
// once sharing one decode batch (the short one finishing first) with the texts they get alone; mixed
// adapters across jobs; and a stopped job keeping what it has.
import Foundation
import Logging
import LoRAOps
import OPTEngine
import Storage
import TestSupport
import XCTest

@testable import Evaluation
@testable import Executors
@testable import JobQueue

final class GenerateExecutorTests: XCTestCase {
    let model = GenerateFixtures.model("pre-ln-f32")
    var state = URL(fileURLWithPath: "/nonexistent")
    lazy var environment = ExecutorEnvironment(stateDirectory: state.path)

    override func setUpWithError() throws {
        state = try GenerateFixtures.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: state)
    }

    static let rowKeys: Set<String> = [
        "type", "index", "prompt", "formatted_prompt", "text", "prompt_tokens", "completion_tokens", "finish_reason",
        "milliseconds", "adapter", "token_ids",
    ]

    func testRowsAndSummary() async throws {
        let (result, rows) = try await succeed([
            "model": .string(model), "template": "alpaca", "max_new_tokens": 6,
            "prompts": [
                "Name a color.", ["instruction": "Translate.", "input": "Bonjour"], ["prompt": "Count.", "input": ""],
            ],
        ])
        let g = try GenerateFixtures.generator("pre-ln-f32")
        let formatted = [
            PromptTemplate.alpaca.prompt(instruction: "Name a color."),
            PromptTemplate.alpaca.prompt(instruction: "Translate.", input: "Bonjour"),
            PromptTemplate.alpaca.prompt(instruction: "Count."),
        ]
        XCTAssertEqual(rows.count, 3)
        for (i, row) in rows.enumerated() {
            let alone = try g.generate(prompts: [formatted[i]], options: GenerationOptions(maxNewTokens: 6))[0]
            XCTAssertEqual(Set(row.objectValue?.keys ?? [:].keys), Self.rowKeys.union(i == 0 ? [] : ["input"]), "#\(i)")
            XCTAssertEqual(row["type"], "generation")
            XCTAssertEqual(row["index"], .number(Double(i)))
            XCTAssertEqual(row["formatted_prompt"]?.stringValue, formatted[i])
            XCTAssertEqual(row["text"]?.stringValue, alone.text)
            XCTAssertEqual(row["token_ids"], .array(alone.tokenIds.map { .number(Double($0)) }))
            XCTAssertEqual(row["prompt_tokens"], .number(Double(alone.promptTokenCount)))
            XCTAssertEqual(row["completion_tokens"], .number(Double(alone.tokenIds.count)))
            XCTAssertEqual(row["finish_reason"]?.stringValue, alone.finishReason.rawValue)
            XCTAssertEqual(row["adapter"], .null)
            XCTAssertGreaterThan(row["milliseconds"]?.doubleValue ?? -1, 0)
        }
        XCTAssertEqual(rows[0]["prompt"], "Name a color.")
        XCTAssertEqual(rows[1]["prompt"], "Translate.")
        XCTAssertEqual(rows[1]["input"], "Bonjour")
        XCTAssertEqual(rows[2]["input"], "")
        XCTAssertEqual(result["model"]?.stringValue, model)
        XCTAssertEqual(result["adapter"], .null)
        XCTAssertEqual(result["outputs"], 3)
        let tokens = rows.reduce(0.0) { $0 + ($1["completion_tokens"]?.doubleValue ?? 0) }
        XCTAssertEqual(result["generated_tokens"]?.doubleValue, tokens)
        XCTAssertEqual(result["finish_reasons"], .array(rows.map { $0["finish_reason"] ?? .null }))
        XCTAssertEqual(result["milliseconds"]?.doubleValue, rows.compactMap { $0["milliseconds"]?.doubleValue }.max())
    }

    func testModelAndAdapterByNameFromTheStateDirectory() async throws {
        try FileManager.default.createDirectory(
            at: state.appendingPathComponent("models"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: state.appendingPathComponent("adapters"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: state.path + "/models/tiny", withDestinationPath: model)
        try FileManager.default.createSymbolicLink(
            atPath: state.path + "/adapters/qv",
            withDestinationPath: GenerateFixtures.adapter("pre-ln-qv"))
        let (result, rows) = try await succeed([
            "model": "tiny", "adapter": "qv", "prompt": "Hello world", "max_new_tokens": 8, "do_sample": true,
            "seed": 5,
        ])
        let g = try GenerateFixtures.generator("pre-ln-f32")
        let options = GenerationOptions(maxNewTokens: 8, doSample: true, seed: 5)
        let alone = try g.generate(
            prompts: ["Hello world"], options: options,
            delta: try GenerateFixtures.delta("pre-ln-qv", g))[0]
        let base = try g.generate(prompts: ["Hello world"], options: options)[0]
        XCTAssertNotEqual(alone.tokenIds, base.tokenIds)
        XCTAssertEqual(rows.first?["text"]?.stringValue, alone.text)
        XCTAssertEqual(rows.first?["adapter"], "qv")
        XCTAssertEqual(rows.first?["prompt"], "Hello world")
        XCTAssertNil(rows.first?["input"])
        XCTAssertEqual(result["model"], "tiny")
        XCTAssertEqual(result["adapter"], "qv")
    }

    /// A model loaded for a fine-tune or an evaluation gets no decode batch; generate jobs share one.
    func testTheDecodeBatchIsBuiltOnlyForGenerateJobs() async throws {
        let cache = ModelCache()
        _ = try await cache.generator(for: model)
        let none = await cache.batcherCount
        XCTAssertEqual(none, 0)
        let first = try await cache.batcher(for: model), second = try await cache.batcher(for: model)
        XCTAssertTrue(first === second)
        let one = await cache.batcherCount
        XCTAssertEqual(one, 1)
    }

    func testTwoJobsShareOneBatchAndTheShortOneFinishesFirst() async throws {
        let batcher = try await environment.models.batcher(for: model)
        // the long job runs 3 steps alone, then the loop waits until the short one has joined the batch
        batcher.holdSteps(after: 3)
        defer { batcher.releaseSteps() }
        let long: JSONValue = [
            "model": .string(model), "prompts": ["Once upon a time, there was", "def add(a, b):"], "max_new_tokens": 45,
            "stop_at_eos": false, "do_sample": true, "seed": 21, "top_k": 20,
        ]
        let short: JSONValue = [
            "model": .string(model), "prompts": ["Hello world", "Paris is"], "max_new_tokens": 4, "do_sample": true,
            "temperature": 0.7, "seed": 8,
        ]
        let longContext = makeContext(long, id: 1), shortContext = makeContext(short, id: 2)
        let executor = GenerateJobExecutor(environment: environment)
        let longTask = Task { () -> (JobOutcome, ContinuousClock.Instant) in
            (try await executor.execute(longContext.job, context: longContext), .now)
        }
        try await waitUntil(seconds: 120) { batcher.isHeld }
        let shortTask = Task { () -> (JobOutcome, ContinuousClock.Instant) in
            (try await executor.execute(shortContext.job, context: shortContext), .now)
        }
        try await waitUntil(seconds: 120) { batcher.jobCount == 2 }
        XCTAssertGreaterThan(longContext.progress ?? 0, 0, "the long job was already running")
        batcher.releaseSteps()
        let (shortOutcome, shortDone) = try await shortTask.value
        let (longOutcome, longDone) = try await longTask.value
        XCTAssertLessThan(shortDone, longDone, "the short job waited for the long one")

        guard case .succeeded(let shortResult?, let shortRows) = shortOutcome,
            case .succeeded(let longResult?, let longRows) = longOutcome
        else { return XCTFail("expected two successes, got \(shortOutcome) and \(longOutcome)") }
        XCTAssertEqual(shortResult["max_batch_rows"], 4, "the short job's rows ran beside the long job's")
        XCTAssertEqual(longResult["max_batch_rows"], 4)
        XCTAssertEqual(batcher.stats.maxRowsInStep, 4)
        XCTAssertEqual(longRows.map { $0["completion_tokens"] }, [45, 45])

        // each alone, one after the other: the same texts and tokens
        for (payload, rows) in [(long, longRows), (short, shortRows)] {
            let (result, alone) = try await succeed(payload)
            XCTAssertEqual(result["max_batch_rows"], 2)
            XCTAssertEqual(alone.map { $0["text"] }, rows.map { $0["text"] })
            XCTAssertEqual(alone.map { $0["token_ids"] }, rows.map { $0["token_ids"] })
        }
    }

    func testJobsWithDifferentAdaptersRunTogetherAndMatchAlone() async throws {
        let batcher = try await environment.models.batcher(for: model)
        batcher.holdSteps()  // the loop starts only when all three jobs are in the batch
        defer { batcher.releaseSteps() }
        let payloads: [JSONValue] = [nil, "pre-ln-qv", "pre-ln-all-bin"].map { adapter in
            var p: [String: JSONValue] = [
                "model": .string(model), "prompts": ["Hello world", "The capital of France is"], "max_new_tokens": 12,
                "stop_at_eos": false,
            ]
            if let adapter { p["adapter"] = .string(GenerateFixtures.adapter(adapter)) }
            return .object(p)
        }
        let executor = GenerateJobExecutor(environment: environment)
        let contexts = payloads.enumerated().map { makeContext($1, id: Int64($0 + 1)) }
        let outcomes = try await withThrowingTaskGroup(of: (Int, JobOutcome).self) { group in
            for (i, context) in contexts.enumerated() {
                group.addTask { (i, try await executor.execute(context.job, context: context)) }
            }
            try await waitUntil(seconds: 120) { batcher.jobCount == contexts.count }
            batcher.releaseSteps()
            var all = [JobOutcome?](repeating: nil, count: contexts.count)
            for try await (i, outcome) in group { all[i] = outcome }
            return all
        }
        XCTAssertGreaterThan(batcher.stats.maxRowsInStep, 2, "the jobs should have shared steps")
        let g = try GenerateFixtures.generator("pre-ln-f32")
        for (i, adapter) in [nil, "pre-ln-qv", "pre-ln-all-bin"].enumerated() {
            guard case .succeeded(_, let rows)? = outcomes[i] else {
                return XCTFail("job \(i): \(String(describing: outcomes[i]))")
            }
            let delta = try adapter.map { try GenerateFixtures.delta($0, g) }
            let alone = try g.generate(
                prompts: ["Hello world", "The capital of France is"],
                options: GenerationOptions(maxNewTokens: 12, stopAtEOS: false), delta: delta)
            XCTAssertEqual(rows.map { $0["text"]?.stringValue }, alone.map(\.text), adapter ?? "base")
            XCTAssertEqual(rows.first?["adapter"]?.stringValue, adapter.map { GenerateFixtures.adapter($0) })
        }
    }

    func testAStoppedJobKeepsWhatItHas() async throws {
        let context = makeContext(
            [
                "model": .string(model), "prompts": ["Hello world", "Paris"], "max_new_tokens": 50,
                "stop_at_eos": false,
            ], id: 7)
        context.stopWhenProgress(reaches: 0.1, reason: .cancelRequested)
        let executor = GenerateJobExecutor(environment: environment)
        let outcome = try await executor.execute(context.job, context: context)
        guard case .stopped(let partial?, let rows, let checkpoint) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertNil(checkpoint)
        XCTAssertEqual(rows.count, 2)
        let g = try GenerateFixtures.generator("pre-ln-f32")
        for (prompt, row) in zip(["Hello world", "Paris"], rows) {
            XCTAssertEqual(row["finish_reason"], "cancelled")
            let got = row["token_ids"]?.arrayValue?.compactMap { $0.doubleValue.map(Int.init) } ?? []
            XCTAssertGreaterThan(got.count, 0)
            XCTAssertLessThan(got.count, 50)
            let alone = try g.generate(
                prompts: [prompt], options: GenerationOptions(maxNewTokens: 50, stopAtEOS: false))[0]
            XCTAssertEqual(Array(alone.tokenIds.prefix(got.count)), got)
        }
        XCTAssertEqual(partial["finish_reasons"], ["cancelled", "cancelled"])

        // a cancelled task (a hard stop) leaves the batch at the next step too
        let hard = makeContext(
            [
                "model": .string(model), "prompt": "Hello world", "max_new_tokens": 50,
                "stop_at_eos": false,
            ], id: 8)
        let batcher = try await environment.models.batcher(for: model)
        batcher.holdSteps(after: 5)  // the task is cancelled while the loop waits after 5 steps
        defer { batcher.releaseSteps() }
        let hardTask = Task { try await executor.execute(hard.job, context: hard) }
        try await waitUntil(seconds: 120) { batcher.isHeld }
        hardTask.cancel()
        batcher.releaseSteps()
        guard case .stopped(_, let hardRows, _) = try await hardTask.value else { return XCTFail("not stopped") }
        XCTAssertEqual(hardRows.first?["finish_reason"], "cancelled")
    }

    // MARK: - Helpers

    func makeContext(_ payload: JSONValue, id: Int64 = 1) -> JobContext {
        let job = ClaimedJob(lease: JobLease(jobID: id, workerID: "t", attempt: 1), kind: "generate", payload: payload)
        return JobContext(job: job, stateDirectory: state.path, logger: Logger(label: "t"))
    }

    func execute(_ payload: JSONValue) async throws -> JobOutcome {
        let context = makeContext(payload)
        return try await GenerateJobExecutor(environment: environment).execute(context.job, context: context)
    }

    func succeed(_ payload: JSONValue, file: StaticString = #filePath, line: UInt = #line) async throws
        -> (result: JSONValue, outputs: [JSONValue])
    {
        let outcome = try await execute(payload)
        guard case .succeeded(let result?, let outputs) = outcome else {
            XCTFail("expected success, got \(outcome)", file: file, line: line)
            throw JobFailure.permanent("not succeeded")
        }
        return (result, outputs)
    }
}
