// Evaluator against the reference pipeline (transformers + peft, expected/<run>/*.json) on the tiny
// checkpoints: muwa predictions string-equal and EM/F1/accuracy exactly equal; PIQA acc/acc_norm exactly
// equal with log-likelihoods within 1e-4 relative; wikitext perplexities within 1e-4 relative.
import Foundation
import OPTEngine
import XCTest

@testable import Evaluation
@testable import Executors

final class EvaluationParityTests: XCTestCase {
    private let squadFile = EvalFixtures.dataset("squad/dev-v1.1.json")
    private let piqaFiles = [EvalFixtures.dataset("piqa/valid.jsonl"), EvalFixtures.dataset("piqa/valid-labels.lst")]

    private var muwaRuns: [(name: String, model: String, lora: Bool)] {
        EvalFixtures.runs.filter { $0.model == "pre-ln-eval-f32" }
    }

    func testMuwaSquadEqualsTheNotebook() throws {
        for run in muwaRuns {
            let expected = try EvalFixtures.object("expected/\(run.name)/muwa_squad.json")
            let samples = try XCTUnwrap(expected["samples"] as? [[String: Any]])
            let evaluator = try EvalFixtures.evaluator(run.model)
            let delta = try EvalFixtures.delta(lora: run.lora)
            let all = try evaluator.evaluate(
                task: .squad, dataset: [squadFile], options: EvalOptions(squadStride: 1),
                delta: delta)
            XCTAssertTrue(all.completed)
            XCTAssertEqual(all.n, samples.count)
            for (got, want) in zip(all.samples, samples) {
                let what = "\(run.name) question \(got.index)"
                XCTAssertEqual(got.id, want["id"] as? String, what)
                XCTAssertTrue(
                    got.output.unicodeScalars.elementsEqual(
                        try XCTUnwrap(want["prediction"] as? String).unicodeScalars), what)
                XCTAssertEqual(got.details["final_prediction"], want["final_prediction"] as? String, what)
                XCTAssertEqual(got.details["contained"].flatMap { Int($0) }, want["contained"] as? Int, what)
                XCTAssertEqual(got.score, try XCTUnwrap(want["f1"] as? Double), what)
                XCTAssertEqual(got.details["exact_match"].flatMap { Double($0) }, want["exact_match"] as? Double, what)
            }
            let summary = try XCTUnwrap(expected["all"] as? [String: Any])
            XCTAssertEqual(all.metric("f1"), summary["f1"] as? Double, run.name)
            XCTAssertEqual(all.metric("exact_match"), summary["exact_match"] as? Double, run.name)

            // SQuAD mini (the default: every 10th question)
            let mini = try evaluator.evaluate(task: .squad, dataset: [squadFile], delta: delta)
            let miniSummary = try XCTUnwrap(expected["stride_10_mini"] as? [String: Any])
            XCTAssertEqual(mini.n, miniSummary["n"] as? Int)
            XCTAssertEqual(mini.metric("f1"), miniSummary["f1"] as? Double, run.name)
            XCTAssertEqual(mini.metric("exact_match"), miniSummary["exact_match"] as? Double, run.name)
            XCTAssertEqual(
                mini.samples.map(\.id), try XCTUnwrap(miniSummary["indices"] as? [Int]).map { all.samples[$0].id })
        }
    }

    /// The whole decoded sequence (prompt, 32 new tokens, specials kept, clean-up) and the token ids; the
    /// PIQA prompts include " ,", " ?", " 's" and " n't", which the clean-up rewrites.
    func testMuwaDecodedSequencesAreIdentical() throws {
        let squad = try SquadDataset.load(path: squadFile).enumerated().filter { $0.offset % 4 == 0 }.map {
            ("muwa_squad", $0.offset, TaskPrompts.squad(question: $0.element.question, context: $0.element.context))
        }
        let piqa = try PIQADataset.load(paths: piqaFiles).enumerated().map {
            (
                "muwa_piqa", $0.offset,
                TaskPrompts.piqa(goal: $0.element.goal, sol1: $0.element.sol1, sol2: $0.element.sol2)
            )
        }
        var cleaned = 0
        for run in muwaRuns {
            let evaluator = try EvalFixtures.evaluator(run.model)
            let runner = MuwaRunner(
                generator: Generator(model: evaluator.model, tokenizer: evaluator.tokenizer),
                options: EvalOptions(), delta: try EvalFixtures.delta(lora: run.lora))
            for (file, index, prompt) in squad + piqa {
                let samples = try XCTUnwrap(
                    try EvalFixtures.object("expected/\(run.name)/\(file).json")["samples"] as? [[String: Any]])
                let want = samples[index]
                let got = try XCTUnwrap(try runner.complete(prompt: prompt, index: index, shouldCancel: { false }))
                if got.text != evaluator.tokenizer.decode(got.ids) { cleaned += 1 }
                XCTAssertEqual(got.ids.count, try XCTUnwrap(want["prompt_tokens"] as? Int) + 32)
                XCTAssertEqual(
                    Array(got.ids.suffix(32)), try XCTUnwrap(want["generated_ids"] as? [Int]), "\(run.name) \(index)")
                XCTAssertTrue(
                    got.text.unicodeScalars.elementsEqual(try XCTUnwrap(want["output"] as? String).unicodeScalars),
                    "\(run.name) \(file) \(index)")
            }
        }
        XCTAssertGreaterThan(cleaned, 0, "no decoded sequence exercised the clean-up")
    }

    func testMuwaPIQAEqualsTheNotebook() throws {
        for run in muwaRuns {
            let expected = try EvalFixtures.object("expected/\(run.name)/muwa_piqa.json")
            let samples = try XCTUnwrap(expected["samples"] as? [[String: Any]])
            let report = try EvalFixtures.evaluator(run.model).evaluate(
                task: .piqa, method: .muwa, dataset: piqaFiles, delta: try EvalFixtures.delta(lora: run.lora))
            XCTAssertEqual(report.n, samples.count)
            for (got, want) in zip(report.samples, samples) {
                let what = "\(run.name) example \(got.index)"
                XCTAssertTrue(
                    got.output.unicodeScalars.elementsEqual(
                        try XCTUnwrap(want["prediction"] as? String).unicodeScalars), what)
                XCTAssertEqual(got.details["choice"], (want["choice"] as? Int).map { "\($0)" }, what)
                XCTAssertEqual(got.details["rule"], want["rule"] as? String, what)
                XCTAssertEqual(got.score == 1, want["correct"] as? Bool, what)
            }
            XCTAssertEqual(report.metric("accuracy"), expected["accuracy"] as? Double, run.name)
        }
    }

    func testLoglikelihoodPIQAEqualsTheHarnessWay() throws {
        var worst = 0.0
        for run in EvalFixtures.runs {
            let expected = try EvalFixtures.object("expected/\(run.name)/loglikelihood_piqa.json")
            let samples = try XCTUnwrap(expected["samples"] as? [[String: Any]])
            let report = try EvalFixtures.evaluator(run.model).evaluate(
                task: "piqa", method: "loglikelihood", dataset: piqaFiles, delta: try EvalFixtures.delta(lora: run.lora)
            )
            XCTAssertEqual(report.n, samples.count)
            for (got, want) in zip(report.samples, samples) {
                let what = "\(run.name) example \(got.index)"
                let lls = try XCTUnwrap(want["lls_fsum"] as? [Double])
                let ids = try XCTUnwrap(want["continuation_ids"] as? [[Int]])
                XCTAssertRelativelyClose(try XCTUnwrap(got.details["ll_1"].flatMap { Double($0) }), lls[0], 1e-4, what)
                XCTAssertRelativelyClose(try XCTUnwrap(got.details["ll_2"].flatMap { Double($0) }), lls[1], 1e-4, what)
                for (k, key) in ["ll_1", "ll_2"].enumerated() {
                    worst = max(worst, abs((got.details[key].flatMap { Double($0) } ?? 0) - lls[k]) / abs(lls[k]))
                }
                XCTAssertEqual(got.details["tokens_1"], "\(ids[0].count)", what)
                XCTAssertEqual(got.details["tokens_2"], "\(ids[1].count)", what)
                XCTAssertEqual(got.score, Double(try XCTUnwrap(want["acc"] as? Int)), what)
                XCTAssertEqual(got.details["acc_norm"], "\(try XCTUnwrap(want["acc_norm"] as? Int))", what)
            }
            XCTAssertEqual(report.metric("acc"), expected["acc"] as? Double, run.name)
            XCTAssertEqual(report.metric("acc_norm"), expected["acc_norm"] as? Double, run.name)
        }
        print("PIQA log-likelihoods: largest relative difference \(worst)")
    }

    func testWikitextPerplexitiesEqualTheNotebookAndTheStandardFigures() throws {
        let raw = EvalFixtures.dataset("wikitext/wiki.test.raw")
        var worst = 0.0
        for run in EvalFixtures.runs {
            let expected = try EvalFixtures.object("expected/\(run.name)/wikitext.json")
            for config in try XCTUnwrap(expected["configs"] as? [[String: Any]]) {
                let options = EvalOptions(
                    maxLength: try XCTUnwrap(config["max_length"] as? Int),
                    stride: try XCTUnwrap(config["stride"] as? Int))
                let what = "\(run.name) \(options.maxLength)/\(options.stride)"
                let evaluator = try EvalFixtures.evaluator(run.model)
                let delta = try EvalFixtures.delta(lora: run.lora)
                let muwa = try evaluator.evaluate(
                    task: .wikitext, method: .muwa, dataset: [raw], options: options, delta: delta)
                XCTAssertEqual(
                    muwa.settings["max_length"], "\(try XCTUnwrap(config["effective_max_length"] as? Int))", what)
                XCTAssertEqual(muwa.settings["stride"], "\(try XCTUnwrap(config["effective_stride"] as? Int))", what)
                let windows = try XCTUnwrap(config["windows"] as? [[String: Any]])
                XCTAssertEqual(muwa.samples.count, windows.count, what)
                for (got, want) in zip(muwa.samples, windows) {
                    XCTAssertEqual(
                        got.input, "tokens \(want["begin"] as? Int ?? -1)..<\(want["end"] as? Int ?? -1)", what)
                    XCTAssertEqual(got.details["targets"], "\(want["targets"] as? Int ?? -1)", what)
                    XCTAssertRelativelyClose(got.score, try XCTUnwrap(want["loss"] as? Double), 1e-4, what)
                }
                XCTAssertEqual(muwa.metrics.first?.name, "perplexity")
                XCTAssertRelativelyClose(
                    try XCTUnwrap(muwa.metric("perplexity")), try XCTUnwrap(config["perplexity"] as? Double), 1e-4, what
                )
                XCTAssertRelativelyClose(
                    try XCTUnwrap(muwa.metric("token_perplexity")),
                    try XCTUnwrap(config["token_perplexity"] as? Double), 1e-4, what)
                XCTAssertRelativelyClose(
                    try XCTUnwrap(muwa.metric("bits_per_byte")), try XCTUnwrap(config["bits_per_byte"] as? Double),
                    1e-4, what)
                XCTAssertEqual(muwa.n, config["token_count"] as? Int, what)
                for (metric, key) in [("perplexity", "perplexity"), ("token_perplexity", "token_perplexity")] {
                    let want = config[key] as? Double ?? 0
                    worst = max(worst, abs((muwa.metric(metric) ?? 0) - want) / want)
                }
                if run.name == "pre-ln-f32" {
                    let standard = try evaluator.evaluate(
                        task: .wikitext, method: .loglikelihood, dataset: [raw], options: options)
                    XCTAssertEqual(standard.metrics.first?.name, "token_perplexity")
                    XCTAssertEqual(standard.metric("token_perplexity"), muwa.metric("token_perplexity"))
                }
            }
        }
        print("wikitext perplexities: largest relative difference \(worst)")
    }

    func testCompareBaseRunsBothOnTheSameExamples() throws {
        let evaluator = try EvalFixtures.evaluator("pre-ln-eval-f32")
        var seen: [Double] = []
        let (base, tuned) = try evaluator.compare(
            task: .piqa, method: .muwa, dataset: piqaFiles,
            options: EvalOptions(limit: 6), adapter: try EvalFixtures.lora(),
            progress: { seen.append($0) })
        for (report, run) in [(base, "pre-ln-eval-f32"), (tuned, "pre-ln-eval-f32+lora")] {
            let samples = try XCTUnwrap(
                try EvalFixtures.object("expected/\(run)/muwa_piqa.json")["samples"] as? [[String: Any]])
            XCTAssertEqual(
                report.samples.map(\.output), samples.prefix(6).map { $0["prediction"] as? String ?? "" }, run)
        }
        XCTAssertEqual(seen.last, 1)
        XCTAssertEqual(seen, seen.sorted())
    }

    func testLimitAndCancellation() throws {
        let evaluator = try EvalFixtures.evaluator("pre-ln-eval-f32")
        let limited = try evaluator.evaluate(
            task: .squad, dataset: [squadFile], options: EvalOptions(limit: 2, squadStride: 1))
        XCTAssertEqual(limited.n, 2)
        var calls = 0
        let cancelled = try evaluator.evaluate(
            task: .piqa, method: .loglikelihood, dataset: piqaFiles,
            shouldCancel: {
                calls += 1; return calls > 3
            })
        XCTAssertFalse(cancelled.completed)
        XCTAssertEqual(cancelled.n, 3)
        var steps = 0
        let midGeneration = try evaluator.evaluate(
            task: .squad, dataset: [squadFile], options: EvalOptions(squadStride: 1),
            shouldCancel: {
                steps += 1; return steps > 40
            })
        XCTAssertFalse(midGeneration.completed)
        XCTAssertEqual(midGeneration.n, 1)
    }

    func testPromptsLongerThanThePositionsAreRejected() throws {
        XCTAssertThrowsError(try EvalFixtures.evaluator("pre-ln-f32").evaluate(task: .squad, dataset: [squadFile])) {
            error in
            guard case .exampleTooLong(0, _, 64)? = error as? EvaluationError else { return XCTFail("\(error)") }
        }
    }
}
