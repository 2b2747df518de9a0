// The `evaluate` executor end to end without a database: payloads in, eval_result / eval_sample rows out,
// on the tiny checkpoint of Tests/Fixtures/eval and held to the reference pipeline's figures
// (expected/<run>/*.json, as EvaluationParityTests holds the library to them); names resolved from a
// state directory; every bad input failing permanently with a message naming what to fix; and a job
// stopped at shutdown and resumed giving exactly the rows of one uninterrupted run.
import Foundation
import Logging
import LoRAOps
import OPTEngine
import Storage
import XCTest

@testable import Evaluation
@testable import Executors
@testable import JobQueue

final class EvaluateExecutorTests: XCTestCase {
    let model = EvalFixtures.model("pre-ln-eval-f32")
    let lora = EvalFixtures.path("lora/pre-ln-eval-f32-lora")
    let squad = EvalFixtures.dataset("squad/dev-v1.1.json")
    let piqaDirectory = EvalFixtures.dataset("piqa")
    let wikitext = EvalFixtures.dataset("wikitext/wiki.test.raw")
    var state = URL(fileURLWithPath: "/nonexistent")
    lazy var environment = ExecutorEnvironment(stateDirectory: state.path)

    override func setUpWithError() throws {
        state = try EvalFixtures.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: state)
    }

    /// Evaluations report a pace like fine-tunes: tokens per second (tokens read, generated or scored) and
    /// an ETA in the progress line.
    func testEvaluationProgressCarriesTokensPerSecond() async throws {
        let context = makeContext(["model": .string(model), "task": "squad", "dataset": ["path": .string(squad)]])
        let outcome = try await EvaluateJobExecutor(environment: ExecutorEnvironment(stateDirectory: state.path))
            .execute(context.job, context: context)
        guard case .succeeded = outcome else { return XCTFail("\(outcome)") }
        context.progressLogInterval = 0.000_001
        let line = try XCTUnwrap(context.progressLine())
        XCTAssertTrue(line.hasPrefix("progress 100.0%"), line)
        XCTAssertTrue(line.contains(" tokens/s"), line)
    }

    // MARK: - Parity with the reference, through the executor

    func testSquadMiniForBaseAndAdapterEqualsTheReference() async throws {
        let (result, outputs) = try await succeed([
            "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "squad",
            "dataset": ["path": .string(squad)],
        ])
        for (adapter, run) in [(nil, "pre-ln-eval-f32"), (lora, "pre-ln-eval-f32+lora")] {
            let expected = try EvalFixtures.object("expected/\(run)/muwa_squad.json")
            let mini = try XCTUnwrap(expected["stride_10_mini"] as? [String: Any])
            let reference = try XCTUnwrap(expected["samples"] as? [[String: Any]])
            let metrics = Self.results(outputs, adapter: adapter)
            XCTAssertEqual(metrics.map(\.metric), ["f1", "exact_match"], run)
            XCTAssertEqual(metrics[0].value, mini["f1"] as? Double, run)
            XCTAssertEqual(metrics[1].value, mini["exact_match"] as? Double, run)
            XCTAssertEqual(metrics[0].n, 4, run)
            let samples = Self.samples(outputs, adapter: adapter)
            let indices = try XCTUnwrap(mini["indices"] as? [Int])
            XCTAssertEqual(samples.count, indices.count, run)
            for (k, (row, index)) in zip(samples, indices).enumerated() {
                let want = reference[index]
                XCTAssertEqual(row["index"], .number(Double(k)), run)
                XCTAssertEqual(row["example_id"]?.stringValue, want["id"] as? String, run)
                XCTAssertEqual(row["output"]?.stringValue, want["prediction"] as? String, run)
                XCTAssertEqual(row["score"]?.doubleValue, want["f1"] as? Double, run)
                XCTAssertEqual(
                    row["details"]?["final_prediction"]?.stringValue, want["final_prediction"] as? String, run)
                XCTAssertEqual(Set(row.keys), Self.sampleKeys, run)
            }
            let side = adapter == nil ? "base" : "adapter"
            XCTAssertEqual(result["metrics"]?[side]?["f1"]?.doubleValue, mini["f1"] as? Double, run)
        }
        XCTAssertEqual(result["task"], "squad")
        XCTAssertEqual(result["method"], "muwa")
        XCTAssertEqual(result["adapter"]?.stringValue, lora)
        XCTAssertEqual(result["n"], 4)
    }

    func testSquadStrideAndLimit() async throws {
        let (result, outputs) = try await succeed([
            "model": .string(model), "task": "SQuAD", "dataset": .string(squad), "squad_stride": 1, "limit": 5,
        ])
        let reference = try XCTUnwrap(
            try EvalFixtures.object("expected/pre-ln-eval-f32/muwa_squad.json")["samples"] as? [[String: Any]])
        let f1 = try reference.prefix(5).reduce(0.0) { $0 + (try XCTUnwrap($1["f1"] as? Double)) } / 5
        let samples = Self.samples(outputs, adapter: nil)
        XCTAssertEqual(samples.map { $0["example_id"]?.stringValue }, reference.prefix(5).map { $0["id"] as? String })
        XCTAssertEqual(Self.results(outputs, adapter: nil).first?.value, f1)
        XCTAssertEqual(result["metrics"]?["f1"]?.doubleValue, f1)
        XCTAssertEqual(result["n"], 5)
        XCTAssertEqual(result["settings"]?["squad_stride"], "1")
    }

    func testPIQAMuwaForBaseAndAdapterEqualsTheReference() async throws {
        let (result, outputs) = try await succeed([
            "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "piqa", "method": "muwa",
            "dataset": ["path": .string(piqaDirectory)],
        ])
        for (adapter, run) in [(nil, "pre-ln-eval-f32"), (lora, "pre-ln-eval-f32+lora")] {
            let expected = try EvalFixtures.object("expected/\(run)/muwa_piqa.json")
            let reference = try XCTUnwrap(expected["samples"] as? [[String: Any]])
            let metrics = Self.results(outputs, adapter: adapter)
            XCTAssertEqual(metrics.map(\.metric), ["accuracy", "correct"], run)
            XCTAssertEqual(metrics[0].value, expected["accuracy"] as? Double, run)
            XCTAssertEqual(metrics[1].value, (expected["correct"] as? Int).map(Double.init), run)
            XCTAssertEqual(metrics[0].n, 20, run)
            let samples = Self.samples(outputs, adapter: adapter)
            XCTAssertEqual(samples.count, reference.count, run)
            for (row, want) in zip(samples, reference) {
                XCTAssertEqual(row["output"]?.stringValue, want["prediction"] as? String, run)
                XCTAssertEqual(row["details"]?["choice"]?.stringValue, (want["choice"] as? Int).map { "\($0)" }, run)
                XCTAssertEqual(row["details"]?["rule"]?.stringValue, want["rule"] as? String, run)
                XCTAssertEqual(row["score"]?.doubleValue == 1, want["correct"] as? Bool, run)
            }
            let side = adapter == nil ? "base" : "adapter"
            XCTAssertEqual(result["metrics"]?[side]?["accuracy"]?.doubleValue, expected["accuracy"] as? Double, run)
        }
    }

    func testPIQALoglikelihoodForBaseAndAdapterEqualsTheHarness() async throws {
        let (_, outputs) = try await succeed([
            "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "piqa",
            "method": "loglikelihood",
            "dataset": [
                "path": .string(piqaDirectory + "/valid.jsonl"), "labels": .string(piqaDirectory + "/valid-labels.lst"),
            ],
        ])
        for (adapter, run) in [(nil, "pre-ln-eval-f32"), (lora, "pre-ln-eval-f32+lora")] {
            let expected = try EvalFixtures.object("expected/\(run)/loglikelihood_piqa.json")
            let metrics = Self.results(outputs, adapter: adapter)
            XCTAssertEqual(metrics.map(\.metric), ["acc", "acc_norm"], run)
            XCTAssertEqual(metrics[0].value, expected["acc"] as? Double, run)
            XCTAssertEqual(metrics[1].value, expected["acc_norm"] as? Double, run)
            let reference = try XCTUnwrap(expected["samples"] as? [[String: Any]])
            for (row, want) in zip(Self.samples(outputs, adapter: adapter), reference) {
                let lls = try XCTUnwrap(want["lls_fsum"] as? [Double])
                let ll1 = try XCTUnwrap(row["details"]?["ll_1"]?.stringValue.flatMap { Double($0) })
                XCTAssertRelativelyClose(ll1, lls[0], 1e-4, run)
                XCTAssertEqual(row["score"]?.doubleValue, (want["acc"] as? Int).map(Double.init), run)
            }
        }
    }

    func testWikitextBothMethodsForBaseAndAdapterEqualTheReference() async throws {
        for method in ["muwa", "loglikelihood"] {
            let (result, outputs) = try await succeed([
                "model": .string(model), "adapter": .string(lora), "compare_base": true, "task": "wikitext",
                "method": .string(method), "dataset": ["path": .string(wikitext)], "max_length": 32, "stride": 16,
            ])
            for (adapter, run) in [(nil, "pre-ln-eval-f32"), (lora, "pre-ln-eval-f32+lora")] {
                let what = "\(run) \(method)"
                let configs = try XCTUnwrap(
                    try EvalFixtures.object("expected/\(run)/wikitext.json")["configs"] as? [[String: Any]])
                let config = try XCTUnwrap(configs.first { $0["max_length"] as? Int == 32 })
                let metrics = Self.results(outputs, adapter: adapter)
                XCTAssertEqual(metrics.first?.metric, method == "muwa" ? "perplexity" : "token_perplexity", what)
                XCTAssertEqual(Set(metrics.map(\.metric)), ["perplexity", "token_perplexity", "bits_per_byte"], what)
                for metric in metrics {
                    XCTAssertRelativelyClose(metric.value, try XCTUnwrap(config[metric.metric] as? Double), 1e-4, what)
                    XCTAssertEqual(metric.n, config["token_count"] as? Int, what)
                }
                let windows = try XCTUnwrap(config["windows"] as? [[String: Any]])
                let samples = Self.samples(outputs, adapter: adapter)
                XCTAssertEqual(samples.count, windows.count, what)
                for (row, want) in zip(samples, windows) {
                    XCTAssertEqual(row["example_id"], .null, what)
                    XCTAssertRelativelyClose(
                        try XCTUnwrap(row["score"]?.doubleValue), try XCTUnwrap(want["loss"] as? Double), 1e-4, what)
                }
            }
            XCTAssertEqual(result["settings"]?["windows"], "40")
        }
    }

    func testModelAndAdapterByNameFromTheStateDirectory() async throws {
        let models = state.appendingPathComponent("models"), adapters = state.appendingPathComponent("adapters")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: adapters, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: models.appendingPathComponent("tiny").path, withDestinationPath: model)
        try FileManager.default.copyItem(atPath: lora, toPath: adapters.appendingPathComponent("tuned").path)

        let (result, outputs) = try await succeed([
            "model": "tiny", "adapter": "tuned", "task": "piqa", "method": "loglikelihood",
            "dataset": ["path": .string(piqaDirectory)],
        ])
        let expected = try EvalFixtures.object("expected/pre-ln-eval-f32+lora/loglikelihood_piqa.json")
        XCTAssertEqual(Self.results(outputs, adapter: "tuned").first?.value, expected["acc"] as? Double)
        XCTAssertTrue(outputs.allSatisfy { $0["model"] == "tiny" && $0["adapter"] == "tuned" })
        XCTAssertEqual(result["metrics"]?["acc_norm"]?.doubleValue, expected["acc_norm"] as? Double)
        XCTAssertEqual(result["adapter"], "tuned")
    }

    /// peft's bias "all" replaces layer-norm biases: evaluated on a merged copy, as the library would.
    func testAdapterWithLayerNormBiasesIsEvaluatedMerged() async throws {
        let base = EvalFixtures.model("pre-ln-f32")
        let directory = EvalFixtures.fixtures.appendingPathComponent("lora/adapters/pre-ln-bias-all").path
        let (_, outputs) = try await succeed([
            "model": .string(base), "adapter": .string(directory), "task": "piqa", "method": "loglikelihood",
            "dataset": .string(piqaDirectory), "limit": 4,
        ])
        let loaded = try OPTModel.load(directory: base)
        let adapter = try LoRAAdapter.load(directory: directory, model: loaded.config)
        XCTAssertFalse(adapter.biases.layerNorms.isEmpty)
        let merged = try adapter.merge(into: loaded).merged
        let report = try Evaluator(model: merged, tokenizer: try BPETokenizer.load(directory: base))
            .evaluate(task: .piqa, method: .loglikelihood, dataset: [piqaDirectory], options: EvalOptions(limit: 4))
        XCTAssertEqual(Self.results(outputs, adapter: directory).map(\.value), report.metrics.map(\.value))
        XCTAssertEqual(
            Self.samples(outputs, adapter: directory).map { $0["details"]?["ll_1"]?.stringValue },
            report.samples.map { $0.details["ll_1"] })
    }

    // MARK: - Helpers

    static let sampleKeys: Set<String> = [
        "type", "model", "adapter", "task", "method", "index", "example_id", "input", "expected", "output", "score",
        "details",
    ]

    func makeContext(_ payload: JSONValue, checkpoint: JSONValue? = nil) -> JobContext {
        let job = ClaimedJob(
            lease: JobLease(jobID: 1, workerID: "t", attempt: 1), kind: "evaluate", payload: payload,
            checkpoint: checkpoint)
        return JobContext(job: job, stateDirectory: state.path, logger: Logger(label: "t"))
    }

    func execute(_ payload: JSONValue, checkpoint: JSONValue? = nil) async throws -> JobOutcome {
        let context = makeContext(payload, checkpoint: checkpoint)
        return try await EvaluateJobExecutor(environment: environment).execute(context.job, context: context)
    }

    func succeed(
        _ payload: JSONValue, checkpoint: JSONValue? = nil, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> (result: JSONValue, outputs: [JSONValue]) {
        let outcome = try await execute(payload, checkpoint: checkpoint)
        guard case .succeeded(let result?, let outputs) = outcome else {
            XCTFail("expected success, got \(outcome)", file: file, line: line)
            throw JobFailure.permanent("not succeeded")
        }
        return (result, outputs)
    }

    /// The eval_result rows of one run, in output order.
    static func results(_ outputs: [JSONValue], adapter: String?) -> [(metric: String, value: Double, n: Int)] {
        outputs.filter { $0["type"] == "eval_result" && $0["adapter"] == (adapter.map { .string($0) } ?? .null) }
            .map {
                ($0["metric"]?.stringValue ?? "", $0["value"]?.doubleValue ?? .nan, Int($0["n"]?.doubleValue ?? -1))
            }
    }

    /// The eval_sample rows of one run, in output order.
    static func samples(_ outputs: [JSONValue], adapter: String?) -> [[String: JSONValue]] {
        outputs.filter { $0["type"] == "eval_sample" && $0["adapter"] == (adapter.map { .string($0) } ?? .null) }
            .compactMap(\.objectValue)
    }
}
