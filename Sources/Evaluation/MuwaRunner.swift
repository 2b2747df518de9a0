// MuwaRunner: the generation half of `method: "muwa"`, as the evaluation notebook ran it: one prompt at a
// time, greedy with repetition penalty 1.2 (its temperature/top-p/top-k were inert without sampling),
// always 32 new tokens (its transformers release did not stop at </s>), then the whole sequence —
// prompt included — decoded with special tokens kept and 4.28's default clean-up of tokenization
// spaces, split at the template's marker and stripped.
//   SQuAD: expansion + containment + official v1.1 F1/EM per question, plain means.
//   PIQA:  PIQAParse's three rules, accuracy = correct / n.
import OPTEngine

struct MuwaRunner {
    let generator: Generator
    let options: EvalOptions
    let delta: ProjectionDelta?
    var tally: TokenTally? = nil

    /// The whole decoded sequence (prompt and the new tokens), or nil when cancelled during generation.
    /// `step` is called with the number of tokens generated so far.
    func complete(
        prompt: String, index: Int, step: (Int) -> Void = { _ in },
        shouldCancel: () -> Bool
    ) throws -> (ids: [Int], text: String)? {
        let tokenizer = generator.tokenizer
        let ids = tokenizer.encode(prompt)
        let positions = generator.model.config.maxPositionEmbeddings
        guard ids.count + options.maxNewTokens <= positions else {
            throw EvaluationError.exampleTooLong(
                index: index, tokens: ids.count + options.maxNewTokens,
                positions: positions)
        }
        let settings = GenerationOptions(
            maxNewTokens: options.maxNewTokens, doSample: false,
            repetitionPenalty: options.repetitionPenalty, stopAtEOS: false)
        var steps = 0
        let output = try generator.generate(
            promptIds: [ids], options: [settings], delta: delta,
            shouldCancel: {
                steps += 1
                step(steps)
                return shouldCancel()
            })
        tally?.add(ids.count + (output.first?.tokenIds.count ?? 0))
        guard let result = output.first, result.finishReason != .cancelled else { return nil }
        let sequence = ids + result.tokenIds
        return (sequence, tokenizer.decode(sequence, skipSpecialTokens: false, cleanUpTokenizationSpaces: true))
    }

    /// The response after the marker (the notebook's get_response); "" if the marker is missing.
    func response(_ decoded: String, template: PromptTemplate) -> String {
        template.response(in: decoded) ?? ""
    }

    func squad(
        _ examples: [SquadExample], progress: (Double) -> Void,
        shouldCancel: () -> Bool
    ) throws -> (samples: [EvalSample], completed: Bool) {
        var samples: [EvalSample] = []
        for (index, example) in examples.enumerated() where index >= options.skip {
            if shouldCancel() { return (samples, false) }
            let prompt = TaskPrompts.squad(question: example.question, context: example.context)
            guard
                let decoded = try complete(
                    prompt: prompt, index: index,
                    step: { done in
                        progress((Double(index) + Double(done) / Double(options.maxNewTokens)) / Double(examples.count))
                    }, shouldCancel: shouldCancel)
            else { return (samples, false) }
            let prediction = response(decoded.text, template: .squad)
            let score = SquadMetric.muwaScore(prediction: prediction, answers: example.answers)
            var details = [
                "final_prediction": score.finalPrediction, "exact_match": "\(score.exactMatch)",
                "expanded_answers": score.expandedAnswers.joined(separator: " | "),
            ]
            if let hit = score.containedIndex { details["contained"] = "\(hit)" }
            samples.append(
                EvalSample(
                    index: index, id: example.id, input: example.question,
                    expected: example.answers.joined(separator: " | "), output: prediction,
                    score: score.f1, details: details))
            progress(Double(index + 1) / Double(examples.count))
        }
        return (samples, true)
    }

    func piqa(
        _ examples: [PIQAExample], progress: (Double) -> Void,
        shouldCancel: () -> Bool
    ) throws -> (samples: [EvalSample], completed: Bool) {
        var samples: [EvalSample] = []
        for (index, example) in examples.enumerated() where index >= options.skip {
            if shouldCancel() { return (samples, false) }
            let prompt = TaskPrompts.piqa(goal: example.goal, sol1: example.sol1, sol2: example.sol2)
            guard
                let decoded = try complete(
                    prompt: prompt, index: index,
                    step: { done in
                        progress((Double(index) + Double(done) / Double(options.maxNewTokens)) / Double(examples.count))
                    }, shouldCancel: shouldCancel)
            else { return (samples, false) }
            let prediction = response(decoded.text, template: .piqa)
            let parsed = PIQAParse.choose(prediction: prediction, sol1: example.sol1, sol2: example.sol2)
            let correct = parsed.choice == example.label + 1
            samples.append(
                EvalSample(
                    index: index, id: example.id, input: example.goal,
                    expected: "\(example.label + 1)", output: prediction, score: correct ? 1 : 0,
                    details: ["choice": "\(parsed.choice)", "rule": parsed.rule.rawValue]))
            progress(Double(index + 1) / Double(examples.count))
        }
        return (samples, true)
    }

    /// SQuAD's figures: mean F1 and mean EM over the questions (0–100), summed in order as Python does.
    static func squadMetrics(_ samples: [EvalSample]) -> [EvalMetric] {
        guard !samples.isEmpty else { return [] }
        let f1 = samples.reduce(0.0) { $0 + $1.score } / Double(samples.count)
        let em = samples.reduce(0.0) { $0 + (Double($1.details["exact_match"] ?? "") ?? 0) } / Double(samples.count)
        return [EvalMetric("f1", f1), EvalMetric("exact_match", em)]
    }

    static func accuracy(_ samples: [EvalSample]) -> [EvalMetric] {
        guard !samples.isEmpty else { return [] }
        let correct = samples.filter { $0.score == 1 }.count
        return [
            EvalMetric("accuracy", Double(correct) / Double(samples.count)), EvalMetric("correct", Double(correct)),
        ]
    }
}
