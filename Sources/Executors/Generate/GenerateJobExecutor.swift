// GenerateJobExecutor: the `generate` kind. Validates the payload (GenerateRequest), finds the model and the
// adapter by name or path (Locations), loads the model once (ModelCache), renders and tokenizes the prompts,
// checks them against the model's positions, and hands them to the model's GenerationBatcher — the decode
// batch every generate job on that model shares. Between decode steps the batcher asks whether the job
// should stop: that is where a cancel or a shutdown lands, and where progress (tokens so far / tokens
// asked for) is reported. One `generation` output per prompt (muwa.generations reads them); the job's result
// is a small summary.
import Foundation
import JobQueue
import LoRAOps
import OPTEngine
import Storage

public struct GenerateJobExecutor: JobExecutor {
    public let kind = "generate"
    private let environment: ExecutorEnvironment

    public init(environment: ExecutorEnvironment) {
        self.environment = environment
    }

    public func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
        let request = try GenerateRequest(payload: job.payload)
        let promptBytes = request.prompts.reduce(0) { $0 + $1.formatted.utf8.count }
        guard promptBytes <= environment.maxPromptBytes else {
            throw JobFailure.permanent(
                "invalid generate payload: the prompts hold \(promptBytes) bytes with their template, more than this "
                    + "daemon takes in one job (\(environment.maxPromptBytes) bytes, MUWA_MAX_PROMPT_BYTES); split them "
                    + "into several jobs")
        }
        let location = try environment.locations.model(request.model, field: "model", kind: kind)
        let batcher: GenerationBatcher
        do {
            batcher = try await environment.models.batcher(
                for: location.directory, options: try request.engine.resolve(defaults: environment.engineDefaults))
        } catch let error as EngineError {
            throw JobFailure.permanent("invalid generate payload: model: cannot load \(request.model): \(error)")
        }
        let model = batcher.generator.model, tokenizer = batcher.generator.tokenizer
        let delta = try await adapterDelta(request, model: model)

        let positions = model.config.maxPositionEmbeddings
        let promptIds = request.prompts.map { tokenizer.encode($0.formatted) }
        for (index, ids) in promptIds.enumerated() where ids.count >= positions {
            let which = request.single ? "prompt" : "prompts[\(index)]"
            throw JobFailure.permanent(
                "invalid generate payload: \(which) is \(ids.count) tokens long"
                    + (request.template == .raw ? "" : " with the \(request.template.name) template")
                    + "; the model \(request.model) has \(positions) positions, so nothing could be generated "
                    + "(shorten the prompt)")
        }

        let options = request.options
        var warnings: [JSONValue] = []
        for (index, ids) in promptIds.enumerated() where ids.count + options.maxNewTokens > positions {
            let which = request.single ? "prompt" : "prompts[\(index)]"
            let warning =
                "\(which) has \(ids.count) tokens, which leaves room for \(positions - ids.count) new tokens, not "
                + "max_new_tokens \(options.maxNewTokens): the model has \(positions) positions (finish_reason \"length\")"
            context.logger.notice("\(warning)")
            warnings.append(.string(warning))
        }
        let asked = max(1, options.maxNewTokens * promptIds.count)
        let sequences = promptIds.map { BatchedSequence(promptIds: $0, options: options, delta: delta) }
        let run: BatchedRun
        do {
            run = try await batcher.run(sequences, shouldStop: { context.shouldStop }) { tokens in
                context.reportProgress(
                    Double(tokens) / Double(asked), detail: ["tokens": .number(Double(tokens))], tokens: tokens)
            }
        } catch let error as EngineError {
            if case .invalidRequest = error { throw JobFailure.permanent("invalid generate payload: \(error)") }
            throw JobFailure.retryable("generation failed: \(error)")
        }

        let rows = run.outputs.map { row($0, request: request) }
        var summary: [String: JSONValue] = [
            "model": .string(request.model),
            "adapter": request.adapter.map { .string($0) } ?? .null,
            "outputs": .number(Double(run.outputs.count)),
            "generated_tokens": .number(Double(run.outputs.reduce(0) { $0 + $1.output.tokenIds.count })),
            "finish_reasons": .array(run.outputs.map { .string($0.output.finishReason.rawValue) }),
            "milliseconds": .number(run.outputs.map(\.milliseconds).max() ?? 0),
            "max_batch_rows": .number(Double(run.maxBatchRows)),
        ]
        if options.doSample { summary["seed"] = .exact(Int64(clamping: options.seed)) }
        if !warnings.isEmpty { summary["warnings"] = .array(warnings) }
        let result = JSONValue.object(summary)
        if run.stopped || context.shouldStop {
            return .stopped(partial: result, outputs: rows, checkpoint: nil)
        }
        return .succeeded(result: result, outputs: rows)
    }

    /// The job's adapter as a delta over the shared base weights, or nil.
    private func adapterDelta(_ request: GenerateRequest, model: OPTModel) async throws -> ProjectionDelta? {
        guard let name = request.adapter else { return nil }
        let location = try await environment.locations.adapter(name, field: "adapter", kind: kind)
        let adapter = try Locations.loadAdapter(location, for: model, modelName: request.model, kind: kind)
        do {
            return try AdapterBatch(adapter: adapter, model: model)
        } catch {
            throw JobFailure.permanent(
                "invalid generate payload: adapter \"\(name)\" cannot be applied to "
                    + "\(request.model) without merging: \(error)")
        }
    }

    /// One muwa.job_outputs row (type "generation", read by muwa.generations).
    private func row(_ result: BatchedOutput, request: GenerateRequest) -> JSONValue {
        let prompt = request.prompts[result.index], output = result.output
        var row: [String: JSONValue] = [
            "type": "generation",
            "index": .number(Double(result.index)),
            "prompt": .string(prompt.prompt),
            "formatted_prompt": .string(prompt.formatted),
            "text": .string(output.text),
            "prompt_tokens": .number(Double(output.promptTokenCount)),
            "completion_tokens": .number(Double(output.tokenIds.count)),
            "finish_reason": .string(output.finishReason.rawValue),
            "milliseconds": .number(result.milliseconds),
            "adapter": request.adapter.map { .string($0) } ?? .null,
            "token_ids": .array(output.tokenIds.map { .number(Double($0)) }),
        ]
        if let input = prompt.input { row["input"] = .string(input) }
        return .object(row)
    }
}
