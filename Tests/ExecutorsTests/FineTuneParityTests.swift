// Fine-tuning against Hugging Face transformers' Trainer + peft, end to end: the committed fixture
// Tests/Fixtures/finetune (tools/fixtures/make_finetune_fixtures.py: transformers 5.24, peft 0.21, torch 2.13)
// holds a 200-record databricks-dolly-15k-style file, the ids and labels transformers' tokenizer gives for
// the `alpaca` and `muwa` templates, and a 20-step `Trainer` run (LoRA r 8, alpha 32 on q_proj/v_proj over
// pre-ln-eval-f32, batch 4 × accumulation 4, lr 1e-2 linear with 5 warmup steps, clipping at 1.0, alpaca
// response-only loss, max_length 128) from a saved peft initialisation, with the order in which the Trainer
// visited the records and its logged loss, learning rate and gradient norm per optimizer step.
//
// muwa tokenizes the file with InstructionDataset and trains with LoRATrainer (shuffle off) over the records in
// the Trainer's order. The Trainer reshuffles every epoch and ends an accumulation with the epoch (its 13th
// step has only the 2 micro-batches left of 50), so muwa runs one LoRATrainer per Trainer epoch, the next one
// continuing from the previous one's adapter, AdamW moments and step.
//
// Tolerances: loss and gradient norm 1e-4 relative (the losses are ≈ 15–17, the norms ≈ 1–2); learning rate
// 1e-12 absolute (the same formula in Double); final LoRA weights 1e-4 absolute (they are O(0.1–0.5)).
import Foundation
import OPTEngine
import XCTest

@testable import Evaluation
@testable import Executors
@testable import LoRAOps

final class FineTuneParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func finetune(_ relative: String) -> String {
        fixtures.appendingPathComponent("finetune").appendingPathComponent(relative).path
    }

    static func modelDirectory(_ name: String) -> String { fixtures.appendingPathComponent("models/\(name)").path }

    static func object(_ relative: String) throws -> [String: Any] {
        let path = finetune(relative)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError.missingFile(path: path)
        }
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], relative)
    }

    static func ints(_ value: Any?, _ what: String) throws -> [Int] {
        try XCTUnwrap(value as? [Int], what)
    }

    /// The fixture's dataset tokenized by muwa.
    static func dataset(_ template: FineTuneTemplate, tokenizer: BPETokenizer, maxLength: Int) throws
        -> InstructionDataset
    {
        try InstructionDataset.load(
            path: finetune("dolly-200.jsonl"), template: template, tokenizer: tokenizer,
            maxLength: maxLength, trainOnPrompt: false)
    }

    // MARK: - tokenization

    func testInstructionDatasetGivesTheTokenizerIdsOfTransformers() throws {
        let doc = try Self.object("tokenized.json")
        let maxLength = try XCTUnwrap(doc["max_length"] as? Int)
        let templates = try XCTUnwrap(doc["templates"] as? [String: Any])
        let summary = try XCTUnwrap(doc["summary"] as? [String: Any])
        let tokenizer = try BPETokenizer.load(directory: Self.modelDirectory("pre-ln-eval-f32"))
        for template in [FineTuneTemplate.alpaca, .muwa] {
            let expected = try XCTUnwrap(templates[template.rawValue] as? [[String: Any]], template.rawValue)
            let got = try Self.dataset(template, tokenizer: tokenizer, maxLength: maxLength)
            XCTAssertEqual(got.examples.count, expected.count, "\(template) examples")
            XCTAssertGreaterThanOrEqual(expected.count, 200)
            var failures = 0
            for (i, row) in expected.enumerated() where i < got.examples.count {
                let ids = try Self.ints(row["input_ids"], "\(template) \(i) input_ids")
                let labels = try Self.ints(row["labels"], "\(template) \(i) labels")
                let ex = got.examples[i]
                if ex.inputIds != ids || ex.labels != labels {
                    failures += 1
                    if failures <= 5 {
                        let at = zip(ex.inputIds, ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        XCTFail(
                            "\(template) record \(i): ids \(ex.inputIds.count) vs \(ids.count) tokens, first "
                                + "different id at \(at.map(String.init) ?? "-"); labels equal: \(ex.labels == labels)")
                    }
                }
            }
            XCTAssertEqual(failures, 0, "\(template): records whose ids or labels differ from transformers'")
            let stats = try XCTUnwrap(summary[template.rawValue] as? [String: Any])
            XCTAssertEqual(got.emptyAfterTruncation, stats["empty_after_truncation"] as? Int, "\(template)")
        }
        // the fixture exercises truncation: inside the prompt (no label left) and inside the response
        let alpaca = try XCTUnwrap(summary["alpaca"] as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(alpaca["empty_after_truncation"] as? Int), 0)
        XCTAssertGreaterThan(try XCTUnwrap(alpaca["truncated_inside_response"] as? Int), 0)
    }

    // MARK: - training

    func testTwentyStepsMatchTheTransformersTrainer() throws {
        let run = try Self.object("run.json")
        let modelDir = Self.modelDirectory(try XCTUnwrap(run["model"] as? String))
        let model = try OPTModel.load(directory: modelDir)
        let tokenizer = try BPETokenizer.load(directory: modelDir)
        let configData = try JSONSerialization.data(withJSONObject: try XCTUnwrap(run["training_config"]))
        let config = try JSONDecoder().decode(TrainingConfig.self, from: configData)
        XCTAssertEqual(config.lossNormalization.rawValue, run["loss_normalization"] as? String)
        XCTAssertFalse(config.shuffle)
        XCTAssertEqual(run["template"] as? String, FineTuneTemplate.alpaca.rawValue)
        XCTAssertEqual(run["train_on_prompt"] as? Bool, false)
        let dataset = try Self.dataset(.alpaca, tokenizer: tokenizer, maxLength: config.maxLength)
        let examples = dataset.examples
        let initial = try LoRAAdapter.load(directory: Self.finetune("initial"), model: model.config)
        let final = try LoRAAdapter.load(directory: Self.finetune("final"), model: model.config)
        let steps = try XCTUnwrap(run["steps"] as? [[String: Any]])
        XCTAssertEqual(steps.count, config.maxSteps)

        // the Trainer's order: per step, its micro-batches of record numbers; per epoch, a permutation
        var epochs: [(epoch: Int, steps: [[String: Any]])] = []
        for step in steps {
            let epoch = try XCTUnwrap(step["epoch"] as? Int)
            if epochs.last?.epoch == epoch {
                epochs[epochs.count - 1].steps.append(step)
            } else {
                epochs.append((epoch, [step]))
            }
        }
        func records(_ step: [String: Any]) throws -> [[Int]] {
            try XCTUnwrap(step["micro_batches"] as? [[Int]], "micro_batches")
        }
        for (epoch, epochSteps) in epochs {
            let visited = try epochSteps.flatMap { try records($0).flatMap { $0 } }
            XCTAssertEqual(Set(visited).count, visited.count, "epoch \(epoch) visits a record twice")
            XCTAssertTrue(visited.allSatisfy { examples.indices.contains($0) }, "epoch \(epoch)")
        }
        XCTAssertGreaterThan(epochs.count, 1, "the run should cross an epoch boundary")

        var trainer: LoRATrainer?
        var maxLoss = 0.0, maxNorm = 0.0, maxLR = 0.0
        for (epoch, epochSteps) in epochs {
            let order = try epochSteps.flatMap { try records($0).flatMap { $0 } }
            let next = try LoRATrainer(
                model: model, config: config, examples: order.map { examples[$0] },
                initialAdapter: trainer?.adapter ?? initial)
            if let previous = trainer {  // continue the run: moments, optimizer step, schedule position
                next.optimizer.restore(
                    m: previous.optimizer.m.toArray(), v: previous.optimizer.v.toArray(),
                    step: previous.optimizer.step)
                next.step = previous.step
                next.microStep = previous.microStep
            }
            for expected in epochSteps {
                let report = try next.trainStep()
                let label = "step \(report.step) (epoch \(epoch))"
                XCTAssertEqual(report.step, expected["step"] as? Int, label)
                let micro = try records(expected)
                XCTAssertEqual(report.targetTokens, expected["num_items_in_batch"] as? Int, "\(label) target tokens")
                XCTAssertEqual(
                    report.tokens, micro.flatMap { $0 }.reduce(0) { $0 + examples[$1].inputIds.count },
                    "\(label) tokens: muwa's micro-batches are not the Trainer's")
                let loss = try XCTUnwrap(expected["loss"] as? Double)
                let norm = try XCTUnwrap(expected["grad_norm"] as? Double)
                let lr = try XCTUnwrap(expected["learning_rate"] as? Double)
                XCTAssertEqual(report.loss, loss, accuracy: 1e-4 * abs(loss), "\(label) loss")
                XCTAssertEqual(report.gradNorm, norm, accuracy: 1e-4 * abs(norm), "\(label) grad norm")
                XCTAssertEqual(report.learningRate, lr, accuracy: 1e-12, "\(label) learning rate")
                maxLoss = max(maxLoss, abs(report.loss - loss) / abs(loss))
                maxNorm = max(maxNorm, abs(report.gradNorm - norm) / abs(norm))
                maxLR = max(maxLR, abs(report.learningRate - lr))
            }
            trainer = next
        }
        let done = try XCTUnwrap(trainer)
        XCTAssertTrue(done.isFinished)
        XCTAssertEqual(done.layout, final.layout)
        XCTAssertEqual(done.adapterConfig.r, final.config.r)
        XCTAssertEqual(done.adapterConfig.loraAlpha, final.config.loraAlpha)
        let got = done.params.toArray(), want = final.weights.toArray(), start = initial.weights.toArray()
        XCTAssertEqual(got.count, want.count)
        var maxWeight: Float = 0, moved: Float = 0
        for i in 0..<min(got.count, want.count) {
            maxWeight = max(maxWeight, abs(got[i] - want[i]))
            moved = max(moved, abs(want[i] - start[i]))
        }
        XCTAssertLessThanOrEqual(maxWeight, 1e-4, "final LoRA weights (absolute)")
        XCTAssertGreaterThan(moved, 0.05, "the Trainer's run should move the adapter")
        print(
            "FineTuneParity: max relative difference loss \(maxLoss), grad norm \(maxNorm); "
                + "max absolute difference learning rate \(maxLR), final LoRA weights \(maxWeight) (moved \(moved))")
    }
}
