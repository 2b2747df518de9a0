// Evaluator: the entry point of the `evaluate` job kind's work, without the job: load the dataset in its
// original format, pick the examples (SQuAD mini, limit), run the task's method with or without an
// adapter, and return an EvalReport. Blocking and single-threaded per call (run it off the cooperative
// pool); `progress` gets 0…1 and `shouldCancel` is asked between examples and between generated tokens —
// a cancelled run returns the report of the examples done with `completed == false`.
//
//   task      method          examples                       metrics (headline first)
//   squad     muwa            every 10th question (mini)     f1, exact_match (0–100)
//   piqa      muwa            all                            accuracy, correct
//   piqa      loglikelihood   all                            acc, acc_norm
//   wikitext  muwa            rows joined with "\n\n"        perplexity, token_perplexity, bits_per_byte
//   wikitext  loglikelihood   rows joined with "\n\n"        token_perplexity, bits_per_byte, perplexity
import OPTEngine

public final class Evaluator: @unchecked Sendable {
    public let model: OPTModel
    public let tokenizer: BPETokenizer
    /// Counts the tokens the runs process (prompts read, tokens generated, windows scored), for tokens/s.
    public let tally = TokenTally()

    public init(model: OPTModel, tokenizer: BPETokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Task and method as a payload names them ("squad", "muwa"); a nil method means "muwa".
    public func evaluate(
        task: String, method: String?, dataset: [String], options: EvalOptions = EvalOptions(),
        delta: ProjectionDelta? = nil, progress: (Double) -> Void = { _ in },
        shouldCancel: () -> Bool = { false }
    ) throws -> EvalReport {
        try evaluate(
            task: EvalTask(parsing: task), method: EvalMethod(parsing: method), dataset: dataset,
            options: options, delta: delta, progress: progress, shouldCancel: shouldCancel)
    }

    /// Runs `task` with `method` on the dataset at `dataset` (one path, or PIQA's two files).
    public func evaluate(
        task: EvalTask, method: EvalMethod = .muwa, dataset: [String],
        options: EvalOptions = EvalOptions(), delta: ProjectionDelta? = nil,
        progress: (Double) -> Void = { _ in }, shouldCancel: () -> Bool = { false }
    ) throws -> EvalReport {
        try options.validate()
        guard !dataset.isEmpty else { throw EvaluationError.invalidRequest("dataset.path is required") }
        if task != .piqa && dataset.count != 1 {
            throw EvaluationError.invalidRequest("\(task.rawValue) takes one dataset path, got \(dataset.count)")
        }
        var settings = ["dataset": dataset.joined(separator: ", "), "limit": options.limit.map { "\($0)" } ?? "none"]
        switch (task, method) {
        case (.squad, .muwa):
            let all = try SquadDataset.load(path: dataset[0])
            let chosen = try limited(SquadDataset.subset(all, stride: options.squadStride), options, dataset[0])
            settings["questions_in_file"] = "\(all.count)"
            settings["squad_stride"] = "\(options.squadStride)"
            let runner = MuwaRunner(
                generator: Generator(model: model, tokenizer: tokenizer), options: options, delta: delta, tally: tally)
            let run = try runner.squad(chosen, progress: progress, shouldCancel: shouldCancel)
            return report(
                task, method, run.samples, MuwaRunner.squadMetrics(run.samples), run.completed,
                generationSettings(options, settings))
        case (.piqa, .muwa):
            let chosen = try limited(PIQADataset.load(paths: dataset), options, dataset[0])
            let runner = MuwaRunner(
                generator: Generator(model: model, tokenizer: tokenizer), options: options, delta: delta, tally: tally)
            let run = try runner.piqa(chosen, progress: progress, shouldCancel: shouldCancel)
            return report(
                task, method, run.samples, MuwaRunner.accuracy(run.samples), run.completed,
                generationSettings(options, settings))
        case (.piqa, .loglikelihood):
            let chosen = try limited(PIQADataset.load(paths: dataset), options, dataset[0])
            let run = try LikelihoodRunner(model: model, tokenizer: tokenizer, delta: delta, tally: tally)
                .piqa(chosen, skip: options.skip, progress: progress, shouldCancel: shouldCancel)
            return report(task, method, run.samples, LikelihoodRunner.piqaMetrics(run.samples), run.completed, settings)
        case (.wikitext, _):
            var data = try WikitextDataset.load(path: dataset[0])
            if let limit = options.limit { data.rows = Array(data.rows.prefix(limit)) }
            let window = Perplexity.effective(
                maxLength: options.maxLength, stride: options.stride,
                positions: model.config.maxPositionEmbeddings)
            settings["max_length"] = "\(window.maxLength)"
            settings["stride"] = "\(window.stride)"
            settings["rows"] = "\(data.rows.count)"
            let run = try LikelihoodRunner(model: model, tokenizer: tokenizer, delta: delta, tally: tally)
                .wikitext(
                    data, maxLength: window.maxLength, stride: window.stride, skip: options.skip,
                    progress: progress, shouldCancel: shouldCancel)
            settings["windows"] = "\(run.windows)"
            settings["utf8_bytes"] = "\(run.result.byteCount)"
            let metrics = Self.wikitextMetrics(run.result, method)
            var out = report(task, method, run.samples, metrics, run.completed, settings)
            out.n = run.result.tokenCount
            return out
        case (.squad, .loglikelihood):
            throw EvaluationError.unsupported(task: task.rawValue, method: method.rawValue)
        }
    }

    /// Base model and adapter on the same examples (the payload's `compare_base`): two reports, the
    /// base one first. Progress runs 0…0.5 for the base and 0.5…1 for the adapter.
    public func compare(
        task: EvalTask, method: EvalMethod = .muwa, dataset: [String],
        options: EvalOptions = EvalOptions(), adapter: ProjectionDelta,
        progress: (Double) -> Void = { _ in },
        shouldCancel: () -> Bool = { false }
    ) throws -> (base: EvalReport, adapter: EvalReport) {
        let base = try evaluate(
            task: task, method: method, dataset: dataset, options: options, delta: nil,
            progress: { progress($0 / 2) }, shouldCancel: shouldCancel)
        guard base.completed else {
            return (
                base,
                EvalReport(
                    task: task, method: method, n: 0, metrics: [], samples: [],
                    completed: false, settings: base.settings)
            )
        }
        let tuned = try evaluate(
            task: task, method: method, dataset: dataset, options: options, delta: adapter,
            progress: { progress(0.5 + $0 / 2) }, shouldCancel: shouldCancel)
        return (base, tuned)
    }

    /// The metrics and n of `samples` — every sample of one run in order, e.g. an interrupted run's
    /// followed by those of its resumption (EvalOptions.skip) — exactly as `evaluate` computes them.
    /// wikitext needs the text's UTF-8 byte count (the report's settings["utf8_bytes"]).
    public static func metrics(
        task: EvalTask, method: EvalMethod, samples: [EvalSample], utf8Bytes: Int
    ) -> (metrics: [EvalMetric], n: Int) {
        switch (task, method) {
        case (.squad, _): return (MuwaRunner.squadMetrics(samples), samples.count)
        case (.piqa, .muwa): return (MuwaRunner.accuracy(samples), samples.count)
        case (.piqa, .loglikelihood): return (LikelihoodRunner.piqaMetrics(samples), samples.count)
        case (.wikitext, _):
            var result = PerplexityResult(windowLosses: [], totalNLL: 0, tokenCount: 0, byteCount: utf8Bytes)
            for sample in samples {
                result.windowLosses.append(sample.score)
                result.totalNLL += sample.details["nll"].flatMap { Double($0) } ?? .nan
                result.tokenCount += sample.details["targets"].flatMap { Int($0) } ?? 0
            }
            return (wikitextMetrics(result, method), result.tokenCount)
        }
    }

    private static func wikitextMetrics(_ result: PerplexityResult, _ method: EvalMethod) -> [EvalMetric] {
        guard result.tokenCount > 0 else { return [] }
        let standard = [
            EvalMetric("token_perplexity", result.tokenPerplexity), EvalMetric("bits_per_byte", result.bitsPerByte),
        ]
        let notebook = EvalMetric("perplexity", result.perplexity)
        return method == .muwa ? [notebook] + standard : standard + [notebook]
    }

    private func limited<T>(_ examples: [T], _ options: EvalOptions, _ path: String) throws -> [T] {
        let chosen = options.limit.map { Array(examples.prefix($0)) } ?? examples
        guard !chosen.isEmpty else { throw EvaluationError.emptyDataset(path: path) }
        return chosen
    }

    private func generationSettings(_ options: EvalOptions, _ settings: [String: String]) -> [String: String] {
        settings.merging([
            "max_new_tokens": "\(options.maxNewTokens)",
            "repetition_penalty": "\(options.repetitionPenalty)", "decoding": "greedy",
        ]) { $1 }
    }

    private func report(
        _ task: EvalTask, _ method: EvalMethod, _ samples: [EvalSample], _ metrics: [EvalMetric],
        _ completed: Bool, _ settings: [String: String]
    ) -> EvalReport {
        EvalReport(
            task: task, method: method, n: samples.count, metrics: metrics, samples: samples,
            completed: completed, settings: settings)
    }
}
