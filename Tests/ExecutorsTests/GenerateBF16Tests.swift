// A generate job with "compute": "bf16", end to end through the executor: the model is loaded for bf16 (its
// matrices narrowed to bf16, the Alpaca prompts' prefill through the bf16 GEMM), each row's tokens are what
// the engine's bf16 model gives alone, and the text is sane: the same greedy text as f32 wherever f32's choice
// wins by a wide margin (here: every prompt), since bf16 moves these logits by well under 0.4 (BF16ParityTests).
import Foundation
import Logging
import OPTEngine
import Storage
import XCTest

@testable import Evaluation
@testable import Executors
@testable import JobQueue

final class GenerateBF16Tests: XCTestCase {
    func testAGenerateJobWithComputeBF16() async throws {
        let model = GenerateFixtures.model("pre-ln-f32")
        let state = try GenerateFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        let environment = ExecutorEnvironment(stateDirectory: state.path)  // default compute: exact f32
        let prompts = ["Name a color.", "Write a haiku about otters and rivers in the early morning light."]
        let payload: JSONValue = [
            "model": .string(model), "template": "alpaca", "max_new_tokens": 8, "compute": "bf16",
            "prompts": .array(prompts.map { .string($0) }),
        ]
        let job = ClaimedJob(lease: JobLease(jobID: 1, workerID: "t", attempt: 1), kind: "generate", payload: payload)
        let context = JobContext(job: job, stateDirectory: state.path, logger: Logger(label: "t"))
        let outcome = try await GenerateJobExecutor(environment: environment).execute(job, context: context)
        guard case .succeeded(_, let rows) = outcome else { return XCTFail("expected success, got \(outcome)") }
        XCTAssertEqual(rows.count, prompts.count)

        let loaded = try await environment.models.generator(for: model, options: EngineOptions(compute: .bf16))
        XCTAssertEqual(loaded.model.options.precision, .bf16)
        XCTAssertEqual(loaded.model.weights.layers[0].fc1.weight.dtype, .bf16, "the job's model computes in bf16")
        let f32 = try GenerateFixtures.generator("pre-ln-f32")
        for (i, row) in rows.enumerated() {
            let formatted = PromptTemplate.alpaca.prompt(instruction: prompts[i])
            XCTAssertGreaterThan(try f32.tokenizer.encode(formatted).count, rowInvariantMaxRows)
            let bf16Alone = try loaded.generate(prompts: [formatted], options: GenerationOptions(maxNewTokens: 8))[0]
            let f32Alone = try f32.generate(prompts: [formatted], options: GenerationOptions(maxNewTokens: 8))[0]
            XCTAssertEqual(row["token_ids"], .array(bf16Alone.tokenIds.map { .number(Double($0)) }), "#\(i)")
            XCTAssertEqual(row["text"]?.stringValue, f32Alone.text, "#\(i): bf16 greedy text differs from f32")
        }
    }
}
