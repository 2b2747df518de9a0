// GenerateJobExecutor: the `generate` kind. Validates the payload (GenerateRequest), loads the model once
// (ModelCache), checks each prompt against the model's positions, and runs the engine's Generator on a
// thread of its own. Between tokens the generator asks whether to stop: that is where a cancel or a
// shutdown lands, and where progress (tokens so far / max_new_tokens) is reported. One muwa.job_outputs
// row per prompt; the job's result is a small summary.
import Foundation
import JobQueue
import OPTEngine
import Storage

public struct GenerateJobExecutor: JobExecutor {
    public let kind = "generate"
    private let cache: ModelCache

    public init(environment: ExecutorEnvironment) {
        cache = environment.models
    }

    public func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
        let request = try GenerateRequest(payload: job.payload)
        let generator: Generator
        do {
            generator = try await cache.generator(for: request.model)
        } catch let error as EngineError {
            throw JobFailure.permanent("cannot load the model \(request.model): \(error)")
        }
        let config = generator.model.config
        let positions = config.maxPositionEmbeddings
        let promptIds = request.prompts.map { generator.tokenizer.encode($0) }
        for (index, ids) in promptIds.enumerated() where ids.count >= positions {
            let which = request.single ? "the prompt" : "prompts[\(index)]"
            throw JobFailure.permanent(
                "\(which) is \(ids.count) tokens long; the model \(request.model) has \(positions) positions, "
                    + "so nothing could be generated (shorten the prompt)")
        }

        let options = request.options
        let steps = StepCounter()
        let outputs = try await runEngine(generator, promptIds: promptIds, options: options) {
            let done = steps.increment()
            if options.maxNewTokens > 0 {
                context.reportProgress(Double(done) / Double(options.maxNewTokens), detail: ["tokens": .number(Double(done))])
            }
            return context.shouldStop
        }

        let rows: [JSONValue] = outputs.enumerated().map { index, output in
            [
                "index": .number(Double(index)),
                "text": .string(output.text),
                "token_ids": .array(output.tokenIds.map { .number(Double($0)) }),
                "prompt_tokens": .number(Double(output.promptTokenCount)),
                "finish_reason": .string(output.finishReason.rawValue),
            ]
        }
        let summary: JSONValue = [
            "model": .string(request.model),
            "outputs": .number(Double(outputs.count)),
            "generated_tokens": .number(Double(outputs.reduce(0) { $0 + $1.tokenIds.count })),
            "finish_reasons": .array(outputs.map { .string($0.finishReason.rawValue) }),
        ]
        if context.shouldStop {
            return .stopped(partial: summary, outputs: rows, checkpoint: nil)
        }
        return .succeeded(result: summary, outputs: rows)
    }

    private func runEngine(
        _ generator: Generator, promptIds: [[Int]], options: GenerationOptions, shouldStop: @escaping @Sendable () -> Bool
    ) async throws -> [GenerationOutput] {
        do {
            return try await BlockingWork.run(label: "muwa-generate") {
                try generator.generate(
                    promptIds: promptIds, options: promptIds.map { _ in options }, shouldCancel: shouldStop)
            }
        } catch let error as EngineError {
            if case .invalidRequest = error { throw JobFailure.permanent("\(error)") }
            throw JobFailure.retryable("generation failed: \(error)")
        }
    }
}

/// Counts decode steps across the generator's thread and the progress reporter.
private final class StepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func increment() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}
