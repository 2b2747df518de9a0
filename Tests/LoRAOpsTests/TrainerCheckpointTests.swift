// Repeatability: a run is a function of its seed (lora_dropout, residual dropout and shuffling on),
// and a checkpointed run continues bit for bit — 10 steps straight give the same adapter, moments and
// losses as 5 steps, a checkpoint on disk, a trainer rebuilt from nothing but that directory, 5 steps.
// Also the progress callback can stop a run between steps, and bad settings are refused by name.
import Foundation
import XCTest
@testable import LoRAOps
import OPTEngine

final class TrainerCheckpointTests: XCTestCase {
    static func examples() -> [TrainingExample] {
        [
            TrainingExample(prompt: [2, 133, 2119], completion: [6219, 21, 5, 99]),
            TrainingExample(inputIds: [2, 14, 88, 1002, 17]),
            TrainingExample(prompt: [2, 700], completion: [3201, 4, 8]),
            TrainingExample(prompt: [2, 31, 42, 9], completion: [12]),
            TrainingExample(inputIds: [2, 1, 5, 6, 7, 8, 9, 10]),
        ]
    }

    static func config(steps: Int = 10) -> TrainingConfig {
        var c = TrainingConfig()
        c.r = 4
        c.loraAlpha = 8
        c.loraDropout = 0.1
        c.residualDropout = 0.1
        c.targetModules = ["q_proj", "v_proj", "fc1"]
        c.learningRate = 3e-3
        c.lrScheduler = .cosine
        c.warmupSteps = 2
        c.maxSteps = steps
        c.batchSize = 2
        c.gradientAccumulationSteps = 2
        c.seed = 1234
        c.shuffle = true
        c.maxLength = 16
        return c
    }

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-lora-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testResumedRunIsBitIdentical() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        let straight = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        try straight.train()
        XCTAssertEqual(straight.step, 10)

        let first = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        for _ in 0..<5 { try first.trainStep() }
        let dir = try temporaryDirectory()
        try first.saveCheckpoint(directory: dir)
        let resumed = try LoRATrainer.resume(
            directory: dir, model: try OPTModel.load(directory: LoRAFixtures.model("pre-ln-f32")),
            examples: Self.examples())
        XCTAssertEqual(resumed.step, 5)
        try resumed.train()

        XCTAssertEqual(resumed.params.toArray(), straight.params.toArray(), "adapter weights")
        XCTAssertEqual(resumed.optimizer.m.toArray(), straight.optimizer.m.toArray(), "first moments")
        XCTAssertEqual(resumed.optimizer.v.toArray(), straight.optimizer.v.toArray(), "second moments")
        XCTAssertEqual(resumed.history.map(\.loss), straight.history.map(\.loss), "losses")
        XCTAssertEqual(resumed.cursor, straight.cursor)

        // the checkpoint is an ordinary peft adapter directory as well
        let adapter = try LoRAAdapter.load(directory: dir, model: model.config)
        XCTAssertEqual(adapter.weights.toArray(), first.params.toArray())
    }

    /// The same, with the second half in another process: this test binary re-run on
    /// ``testResumeChild`` only, which finds the checkpoint through MUWA_RESUME_DIR.
    func testResumedInANewProcessIsBitIdentical() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        let straight = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        try straight.train()
        let first = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        for _ in 0..<5 { try first.trainStep() }
        let dir = try temporaryDirectory()
        try first.saveCheckpoint(directory: dir)

        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["LoRAOpsTests.TrainerCheckpointTests/testResumeChild"]
        var env = ProcessInfo.processInfo.environment
        env["MUWA_RESUME_DIR"] = dir
        child.environment = env
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        child.waitUntilExit()
        XCTAssertEqual(child.terminationStatus, 0, "the child process failed")
        let resumed = try LoRAAdapter.load(directory: dir + "/after", model: model.config)
        XCTAssertEqual(
            resumed.weights.toArray(), straight.params.toArray(), "adapter after 5 + 5 steps in two processes")
    }

    /// Runs only as the child of the test above.
    func testResumeChild() throws {
        guard let dir = ProcessInfo.processInfo.environment["MUWA_RESUME_DIR"] else {
            throw XCTSkip("runs only as the child process of testResumedInANewProcessIsBitIdentical")
        }
        let model = try OPTModel.load(directory: LoRAFixtures.model("pre-ln-f32"))
        let trainer = try LoRATrainer.resume(directory: dir, model: model, examples: Self.examples())
        try trainer.train()
        try trainer.saveCheckpoint(directory: dir + "/after")
    }

    func testSameSeedSameRunOtherSeedOtherRun() throws {
        let model = try LoRAFixtures.loadModel("post-ln-f32")
        func run(seed: UInt64) throws -> [Float] {
            var c = Self.config(steps: 3)
            c.seed = seed
            let t = try LoRATrainer(model: model, config: c, examples: Self.examples())
            try t.train()
            return t.params.toArray()
        }
        XCTAssertEqual(try run(seed: 7), try run(seed: 7))
        XCTAssertNotEqual(try run(seed: 7), try run(seed: 8))
    }

    func testProgressCallbackStopsBetweenSteps() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        let t = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        var seen: [Int] = []
        let taken = try t.train { event in
            if case .step(let r) = event { seen.append(r.step) }
            return seen.count == 3 ? .stop : .more
        }
        XCTAssertEqual(taken, 3)
        XCTAssertEqual(seen, [1, 2, 3])
        XCTAssertEqual(t.step, 3)
        XCTAssertFalse(t.isFinished)
    }

    func testGradientCheckpointingBoundsActivationMemory() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        var c = Self.config()
        let plain = try LoRATrainer(model: model, config: c, examples: Self.examples())
        c.gradientCheckpointing = true
        let checkpointed = try LoRATrainer(model: model, config: c, examples: Self.examples())
        XCTAssertLessThan(checkpointed.activationBytes, plain.activationBytes)
        // the layers it keeps from recomputation take at most half of the budget left (here: physical memory)
        let left = (MemoryBudget.physicalMemory() ?? 0) - model.weightBytes
        XCTAssertLessThanOrEqual(checkpointed.keepArenaBytes, max(0, left - checkpointed.activationBytes) / 2)
        XCTAssertEqual(plain.keepArenaBytes, 0)
        try plain.trainStep()
        try checkpointed.trainStep()
        XCTAssertEqual(plain.params.toArray(), checkpointed.params.toArray())
    }

    func testBadSettingsAreRefusedByName() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        var c = Self.config()
        c.targetModules = ["q_proj", "lm_head"]
        XCTAssertThrowsError(try LoRATrainer(model: model, config: c, examples: Self.examples())) { e in
            XCTAssertTrue("\(e)".contains("lm_head"), "\(e)")
        }
        c = Self.config()
        c.gradientAccumulationSteps = 0
        XCTAssertThrowsError(try LoRATrainer(model: model, config: c, examples: Self.examples())) { e in
            XCTAssertTrue("\(e)".contains("gradient_accumulation_steps"), "\(e)")
        }
        c = Self.config()
        c.maxLength = 4
        XCTAssertThrowsError(try LoRATrainer(model: model, config: c, examples: Self.examples())) { e in
            XCTAssertTrue("\(e)".contains("4"), "\(e)")
        }
        XCTAssertThrowsError(
            try LoRATrainer(
                model: model, config: Self.config(),
                examples: [TrainingExample(inputIds: [2, 60_000])])
        ) { e in
            XCTAssertTrue("\(e)".contains("vocabulary"), "\(e)")
        }
        let dir = try temporaryDirectory()
        let t = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        try t.saveCheckpoint(directory: dir)
        XCTAssertThrowsError(
            try LoRATrainer.resume(directory: dir, model: model, examples: Array(Self.examples().dropLast()))
        ) { e in
            XCTAssertTrue("\(e)".contains("examples differ"), "\(e)")
        }
    }

    /// The training buffers are checked against the model's memory budget before anything is allocated: the
    /// estimate is what the buffers take, and a budget that holds the checkpointed buffers but not the plain
    /// ones refuses the plain run with an error naming the way out.
    func testTrainingBuffersAreCheckedAgainstTheMemoryBudget() throws {
        for name in ["pre-ln-f32", "post-ln-f32"] {
            let model = try LoRAFixtures.loadModel(name)
            let adapter = try LoRAAdapter.initialized(
                config: AdapterConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj", "v_proj", "fc1"])),
                model: model.config, seed: 1)
            for checkpointing in [false, true] {
                for (b, t) in [(1, 5), (3, 7), (4, 64)] {
                    let graph = try LoRATrainingModel(
                        model: model, layout: adapter.layout, maxBatch: b, maxLength: t,
                        checkpointing: checkpointing, keepBudget: 0)
                    XCTAssertEqual(
                        graph.activationBytes,
                        TrainingActivations.plannedBytes(
                            config: model.config, layout: adapter.layout, maxB: b, maxT: t,
                            checkpointing: checkpointing),
                        "\(name) checkpointing \(checkpointing) \(b) × \(t)")
                }
            }
            func planned(_ checkpointing: Bool) -> Int {
                TrainingActivations.plannedBytes(
                    config: model.config, layout: adapter.layout, maxB: 4, maxT: 64, checkpointing: checkpointing)
            }
            XCTAssertLessThan(planned(true), planned(false))
            let tight = try OPTModel(
                config: model.config, weights: model.weights, directory: "tiny",
                memoryBudget: MemoryBudget(bytes: model.weightBytes + (planned(true) + planned(false)) / 2))
            XCTAssertThrowsError(
                try LoRATrainingModel(model: tight, layout: adapter.layout, maxBatch: 4, maxLength: 64)
            ) { error in
                guard case EngineError.overMemoryBudget(let what, let estimate, _) = error else {
                    return XCTFail("\(error)")
                }
                XCTAssertEqual(estimate, model.weightBytes + planned(false))
                XCTAssertTrue(what.contains("max_length 64") && what.contains("gradient_checkpointing"), what)
            }
            let checkpointed = try LoRATrainingModel(
                model: tight, layout: adapter.layout, maxBatch: 4, maxLength: 64, checkpointing: true)
            let left = tight.memoryBudget.bytes - tight.weightBytes - checkpointed.activationBytes
            XCTAssertGreaterThan(checkpointed.keepArenaBytes, 0)
            XCTAssertLessThanOrEqual(checkpointed.keepArenaBytes, left / 2, "half of what is left, kept layers")
            // a second training beside it counts the first one's arena: together they stay within the budget
            let beside = try LoRATrainingModel(
                model: tight, layout: adapter.layout, maxBatch: 4, maxLength: 64, checkpointing: true)
            XCTAssertLessThanOrEqual(
                beside.keepArenaBytes, max(0, left - checkpointed.keepArenaBytes) / 2 + 4, "the budget less the first")
            XCTAssertLessThan(beside.keepArenaBytes, checkpointed.keepArenaBytes)
            XCTAssertThrowsError(
                try LoRATrainingModel(
                    model: tight, layout: adapter.layout, maxBatch: Int.max / 2, maxLength: 64, checkpointing: true),
                "a size that overflows is over the budget, not a trap")
        }
    }

    /// The evaluation loss runs forward only on one shared set of layer activations: the bits of a graph that
    /// keeps every layer's.
    func testEvaluationLossIsTheLossOfAFullGraph() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        let trainer = try LoRATrainer(model: model, config: Self.config(), examples: Self.examples())
        try trainer.trainStep()  // a non-zero B
        let examples = Self.examples()
        let full = try LoRATrainingModel(
            model: model, layout: trainer.layout, maxBatch: 1, maxLength: examples.map(\.inputIds.count).max()!)
        var sum = 0.0, count = 0
        for ex in examples {
            let batch = try TrainingBatch.collate(
                [ex], padTokenId: model.config.padTokenId, vocabSize: model.config.vocabSize, maxLength: 1024)
            sum += full.loss(batch, params: trainer.params)
            count += batch.targetCount
        }
        XCTAssertEqual(try trainer.evaluate(examples), sum / Double(count))
    }
}
