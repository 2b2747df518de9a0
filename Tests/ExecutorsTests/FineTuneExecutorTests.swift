// The finetune executor without a database: payload defaults (the Muwa notebook's), a run that writes a
// peft adapter, provenance and training-log events; a run stopped midway and resumed from its checkpoint
// (also from an older checkpoint, as after kill -9) ending with the uninterrupted run's adapter bit for bit;
// and bad input failing with messages that name the problem.
import Foundation
import JobQueue
import LoRAOps
import Logging
import OPTEngine
import Storage
import XCTest

@testable import Executors

final class FineTuneExecutorTests: XCTestCase {
    static let model = EvalFixtures.model("pre-ln-f32")

    var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "muwa-ft-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// A small dolly-format file: instruction / context / response / category.
    func writeDolly(records: Int = 24, name: String = "dolly.jsonl") throws -> String {
        let words = [
            "river", "mountain", "answer", "the", "a", "quick", "model", "data", "über", "naïve", "cat", "blue",
        ]
        var lines: [String] = []
        for i in 0..<records {
            let pick = { (n: Int, salt: Int) in
                (0..<n).map { words[($0 * 7 + i * 3 + salt) % words.count] }.joined(separator: " ")
            }
            let record: [String: String] = [
                "instruction": "Tell me about \(pick(3 + i % 4, 1)).",
                "context": i % 3 == 0 ? pick(5, 2) : "",
                "response": pick(2 + i % 7, 3),
                "category": i % 2 == 0 ? "open_qa" : "summarization",
            ]
            let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
            lines.append(String(decoding: data, as: UTF8.self))
        }
        let path = scratch + "/" + name
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func payload(
        dataset: String, output: String = "tiny", train: [String: JSONValue] = [:], extra: [String: JSONValue] = [:]
    )
        -> JSONValue
    {
        var trainSettings: [String: JSONValue] = [
            "max_steps": 8, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2, "warmup_steps": 2,
            "learning_rate": 0.01, "log_every": 2, "save_every": 3, "max_length": 48,
        ]
        for (key, value) in train { trainSettings[key] = value }
        var object: [String: JSONValue] = [
            "base_model": .string(Self.model), "dataset": ["path": .string(dataset), "eval_fraction": 0.2],
            "output": .string(output), "train": .object(trainSettings),
        ]
        for (key, value) in extra { object[key] = value }
        return .object(object)
    }

    func run(
        _ payload: JSONValue, state: String, jobID: Int64 = 1, attempt: Int = 1,
        stopWhen: (@Sendable (JobContext) -> Bool)? = nil
    ) async throws -> JobOutcome {
        let environment = ExecutorEnvironment(stateDirectory: state)
        let executor = FineTuneJobExecutor(environment: environment)
        let job = ClaimedJob(
            lease: JobLease(jobID: jobID, workerID: "test", attempt: attempt), kind: "finetune", payload: payload)
        let context = JobContext(job: job, stateDirectory: state, logger: Logger(label: "test"))
        let watcher = Task {
            guard let stopWhen else { return }
            while !Task.isCancelled {
                if stopWhen(context) {
                    context.requestStop(.shuttingDown)
                    return
                }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        defer { watcher.cancel() }
        return try await executor.execute(job, context: context)
    }

    func failure(_ payload: JSONValue) async -> String {
        do {
            let outcome = try await run(payload, state: scratch + "/state-bad")
            return "unexpected outcome \(outcome)"
        } catch let failure as JobFailure {
            XCTAssertFalse(failure.retryable, failure.message)
            return failure.message
        } catch {
            return "unexpected error \(error)"
        }
    }

    func testAWarmupLongerThanTheRunIsReported() async throws {
        let dataset = try writeDolly()
        let outcome = try await run(
            payload(dataset: dataset, train: ["max_steps": 2, "warmup_steps": 50]), state: scratch + "/state-warm")
        guard case .succeeded(let result, _) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(
            result?["warnings"]?.arrayValue?.first?.stringValue,
            "warmup_steps 50 is longer than the run (2 steps): the learning rate never reaches 0.01")
        let normal = try await run(
            payload(dataset: dataset, train: ["max_steps": 2, "warmup_steps": 1]), state: scratch + "/state-normal")
        guard case .succeeded(let plain, _) = normal else { return XCTFail("\(normal)") }
        XCTAssertNil(plain?["warnings"])
    }

    func testDefaultsAreTheMuwaNotebooks() throws {
        let request = try FineTuneRequest(payload: [
            "base_model": "opt-1.3b", "dataset": ["path": "/data/dolly.jsonl"], "output": "muwa",
        ])
        XCTAssertEqual(request.config.r, 8)
        XCTAssertEqual(request.config.loraAlpha, 32)
        XCTAssertEqual(request.config.loraDropout, 0.05)
        XCTAssertEqual(request.config.targetModules, ["q_proj", "v_proj"])
        XCTAssertEqual(request.config.batchSize, 4)
        XCTAssertEqual(request.config.gradientAccumulationSteps, 4)
        XCTAssertEqual(request.config.learningRate, 2e-4)
        XCTAssertEqual(request.config.lrScheduler, .linear)
        XCTAssertEqual(request.config.warmupSteps, 100)
        XCTAssertEqual(request.config.maxGradNorm, 1.0)
        XCTAssertEqual(request.config.seed, 42)
        XCTAssertEqual(request.epochs, 2)
        XCTAssertEqual(request.logEvery, 10)
        XCTAssertEqual(request.template, .alpaca)
        // databricks-dolly-15k has 15,011 records: the notebook's run was 1,876 optimizer steps.
        XCTAssertEqual(request.maxSteps(examples: 15_011), 1_876)
    }

    func testTrainsAndWritesAdapterEventsAndProvenance() async throws {
        let dataset = try writeDolly()
        let state = scratch + "/state"
        let outcome = try await run(payload(dataset: dataset), state: state)
        guard case .succeeded(let result, let outputs) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(result?["steps"]?.doubleValue, 8)
        XCTAssertEqual(outputs.count, 1)
        let row = try XCTUnwrap(outputs.first)
        XCTAssertEqual(row["type"]?.stringValue, "adapter")
        XCTAssertEqual(row["name"]?.stringValue, "tiny")
        XCTAssertEqual(row["path"]?.stringValue, state + "/adapters/tiny@1")
        XCTAssertNotNil(row["final_loss"]?.doubleValue)
        XCTAssertNotNil(row["eval_loss"]?.doubleValue)
        XCTAssertEqual(row["lora_config"]?["lora_alpha"]?.doubleValue, 32)
        XCTAssertEqual(row["training_args"]?["max_steps"]?.doubleValue, 8)

        let model = try OPTModel.load(directory: Self.model)
        let adapter = try LoRAAdapter.load(directory: state + "/adapters/tiny@1", model: model.config)
        XCTAssertGreaterThan(adapter.weights.toArray().map(abs).max() ?? 0, 0)
        let provenance = try XCTUnwrap(AdapterProvenance.read(directory: state + "/adapters/tiny@1"))
        XCTAssertEqual(provenance.architecture, AdapterProvenance.architecture(of: model.config))
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/jobs/1/checkpoints"), "checkpoints are removed")
    }

    func testStoppedRunResumesToTheUninterruptedAdapter() async throws {
        let dataset = try writeDolly()
        let whole = scratch + "/whole"
        let body = payload(dataset: dataset, train: ["max_steps": 10, "save_every": 2])
        guard case .succeeded = try await run(body, state: whole) else { return XCTFail("uninterrupted run failed") }
        let expected = try adapterBytes(whole + "/adapters/tiny@1")

        // Stopped at some step (a shutdown: it checkpoints), then resumed by the next attempt.
        let split = scratch + "/split"
        let first = try await run(body, state: split, stopWhen: { ($0.progress ?? 0) >= 0.45 })
        guard case .stopped(_, _, let checkpoint) = first else { return XCTFail("expected a stop, got \(first)") }
        let step = try XCTUnwrap(checkpoint?["step"]?.doubleValue)
        XCTAssertLessThan(step, 10)
        guard case .succeeded = try await run(body, state: split, attempt: 2) else { return XCTFail("resume failed") }
        XCTAssertEqual(try adapterBytes(split + "/adapters/tiny@1"), expected, "resumed after a stop at step \(step)")

        // As after kill -9: no stop checkpoint, only the periodic one (the newest is dropped).
        let crash = scratch + "/crash"
        let second = try await run(body, state: crash, stopWhen: { ($0.progress ?? 0) >= 0.65 })
        guard case .stopped = second else { return XCTFail("expected a stop, got \(second)") }
        let checkpoints = TrainingCheckpoints(workDirectory: crash + "/jobs/1")
        let saved = checkpoints.saved()
        XCTAssertGreaterThanOrEqual(saved.count, 1)
        if saved.count > 1 { try FileManager.default.removeItem(atPath: saved[0].directory) }
        try FileManager.default.createDirectory(
            atPath: crash + "/jobs/1/checkpoints/step-00000009.partial",
            withIntermediateDirectories: true)  // a half-written one is ignored
        guard case .succeeded = try await run(body, state: crash, attempt: 2) else { return XCTFail("resume failed") }
        XCTAssertEqual(try adapterBytes(crash + "/adapters/tiny@1"), expected)
    }

    func testAnotherPayloadUnderTheSameJobIDNeverResumesTheCheckpoints() async throws {
        let dataset = try writeDolly()
        let state = scratch + "/reused-id"
        let mine = payload(dataset: dataset, train: ["max_steps": 10, "save_every": 2])
        let first = try await run(mine, state: state, stopWhen: { ($0.progress ?? 0) >= 0.45 })
        guard case .stopped = first else { return XCTFail("expected a stop, got \(first)") }
        let before = TrainingCheckpoints(workDirectory: state + "/jobs/1").saved().map(\.directory)
        XCTAssertFalse(before.isEmpty)

        // Someone else's payload (another learning rate) with the same job id: refused, checkpoints untouched.
        let theirs = payload(dataset: dataset, train: ["max_steps": 10, "save_every": 2, "learning_rate": 0.02])
        do {
            let outcome = try await run(theirs, state: state, attempt: 2)
            XCTFail("another payload ran on the checkpoints: \(outcome)")
        } catch let failure as JobFailure {
            XCTAssertFalse(failure.retryable)
            XCTAssertTrue(failure.message.contains("holds the checkpoints of another fine-tune"), failure.message)
        }
        XCTAssertEqual(TrainingCheckpoints(workDirectory: state + "/jobs/1").saved().map(\.directory), before)

        // The payload they belong to still resumes them.
        guard case .succeeded = try await run(mine, state: state, attempt: 3) else { return XCTFail("resume failed") }
    }

    func adapterBytes(_ directory: String) throws -> Data {
        try XCTUnwrap(FileManager.default.contents(atPath: directory + "/adapter_model.safetensors"))
    }

    func testBadInputFailsWithMessagesNamingTheProblem() async throws {
        let good = try writeDolly()
        var message = await failure(payload(dataset: scratch + "/nope.jsonl"))
        XCTAssertTrue(message.contains("nope.jsonl"), message)

        let malformed = scratch + "/malformed.jsonl"
        let lines = try String(contentsOfFile: good, encoding: .utf8).split(separator: "\n").map(String.init)
        try (lines[0..<3] + ["{\"instruction\": \"broken\", "] + lines[3...]).joined(separator: "\n")
            .write(toFile: malformed, atomically: true, encoding: .utf8)
        message = await failure(payload(dataset: malformed))
        XCTAssertTrue(message.contains("line 4"), message)

        let empty = scratch + "/empty.jsonl"
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        message = await failure(payload(dataset: empty))
        XCTAssertTrue(message.contains("empty") || message.contains("no record"), message)

        let missingField = scratch + "/missing-field.jsonl"
        try "{\"instruction\": \"a\", \"context\": \"\", \"category\": \"x\"}\n".write(
            toFile: missingField, atomically: true, encoding: .utf8)
        message = await failure(payload(dataset: missingField))
        XCTAssertTrue(message.contains("response") && message.contains("line 1"), message)

        message = await failure(payload(dataset: good, train: ["max_length": 100_000]))
        XCTAssertTrue(message.contains("train.max_length 100000") && message.contains("positions"), message)
        message = await failure(payload(dataset: good, extra: ["template": "chatml"]))
        XCTAssertTrue(message.contains("template must be one of muwa, alpaca, text"), message)
        message = await failure(payload(dataset: good, output: "../escape"))
        XCTAssertTrue(message.contains("output must be an adapter name"), message)
        message = await failure(payload(dataset: good, train: ["learning_rat": 0.1]))
        XCTAssertTrue(message.contains("unknown field \"train.learning_rat\""), message)
        message = await failure(payload(dataset: good, extra: ["lora": ["bias": "all"]]))
        XCTAssertTrue(message.contains("lora.bias"), message)
        message = await failure(payload(dataset: good, extra: ["lora": ["target_modules": ["k_proj", "attn"]]]))
        XCTAssertTrue(message.contains("attn"), message)
        message = await failure(payload(dataset: good, extra: ["base_model": "no-such-model"]))
        XCTAssertTrue(message.contains("no model called \"no-such-model\""), message)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: scratch + "/state-bad/adapters/tiny@1"), "nothing half written")
    }
}
