// GenerateRequest: a `generate` job's payload, validated. Every mistake fails the job at once with a
// message naming the field; checks that need the model (the model and adapter names, prompt length against
// the model's positions) happen in GenerateJobExecutor.
//
//   {"model": "opt-1.3b", "prompt": "Hello"}                                    one prompt, raw
//   {"model": "/srv/models/opt-1.3b", "adapter": "dolly", "template": "alpaca",
//    "prompts": ["Name three colors.", {"instruction": "Summarize.", "input": "…"}],
//    "max_new_tokens": 20, "do_sample": true, "temperature": 0.7, "top_k": 50, "top_p": 0.9,
//    "repetition_penalty": 1.1, "seed": 7, "stop": ["\n\n"], "stop_at_eos": true}
//
// `prompt` goes with an optional `input`; each item of `prompts` is a string or an object
// {"prompt" | "instruction": …, "input": …}. An input needs a template that has a place for it.
import Foundation
import JobQueue
import OPTEngine
import Storage

/// One prompt of a job: what the user gave and what the model will see.
struct GeneratePrompt: Equatable {
    /// The prompt (or instruction) as given.
    var prompt: String
    var input: String?
    /// After the template.
    var formatted: String
}

struct GenerateRequest {
    static let fields: Set<String> = [
        "model", "adapter", "prompt", "prompts", "input", "template", "max_new_tokens", "do_sample", "temperature",
        "top_k", "top_p", "repetition_penalty", "seed", "stop", "stop_at_eos",
    ]
    static let itemFields: Set<String> = ["prompt", "instruction", "input"]
    static let maxPrompts = 64
    static let maxPromptBytes = 256 << 10
    static let maxNewTokensLimit = 8192

    /// The model as the payload names it (a directory or a name under the state directory's models/).
    let model: String
    /// The adapter as the payload names it, if any.
    let adapter: String?
    let template: GenerateTemplate
    let prompts: [GeneratePrompt]
    /// True when the payload used `prompt` (a single string) rather than `prompts`.
    let single: Bool
    let options: GenerationOptions
    /// compute / weights / int8_threshold.
    let engine: EnginePayload

    init(payload: JSONValue?) throws {
        let reader = try PayloadReader(kind: "generate", payload: payload)
        try reader.rejectUnknownKeys(Self.fields.union(EnginePayload.fields))
        engine = try EnginePayload(reader)

        model = try reader.string("model")
        guard !model.isEmpty else {
            throw reader.failure(
                "model must name a checkpoint directory or a model under the state directory, got \"\"")
        }
        adapter = try reader.optionalString("adapter", maxLength: 4096)
        let template = try GenerateTemplate(reader.object["template"], reader: reader)
        self.template = template

        var items: [(prompt: String, input: String?, field: String)]
        switch (reader.has("prompt"), reader.has("prompts")) {
        case (true, true):
            throw reader.failure("give either prompt (a string) or prompts (a list), not both")
        case (false, false):
            throw reader.failure("prompt (a string) or prompts (a list of strings) is required")
        case (true, false):
            let prompt = try reader.optionalString("prompt", maxLength: Self.maxPromptBytes) ?? ""
            items = [(prompt, try reader.optionalString("input", maxLength: Self.maxPromptBytes), "input")]
            single = true
        case (false, true):
            if reader.has("input") {
                throw reader.failure(
                    "input goes with prompt; with prompts, give each item its own input: "
                        + "{\"instruction\": …, \"input\": …}")
            }
            items = try Self.readItems(reader)
            single = false
        }
        prompts = try items.map { item in
            if let input = item.input, !input.isEmpty, !template.acceptsInput {
                let why =
                    template == .raw
                    ? "the raw template has no place for it (use template \"alpaca\" or a custom one, or put it in the prompt)"
                    : "the custom template has no prompt_input"
                throw reader.failure("\(item.field) is given but \(why)")
            }
            return GeneratePrompt(
                prompt: item.prompt, input: item.input,
                formatted: template.render(prompt: item.prompt, input: item.input))
        }

        let stop = try reader.optionalStringList("stop", maxCount: 16, maxLength: 256) ?? []
        if let index = stop.firstIndex(of: "") { throw reader.failure("stop[\(index)] must not be empty") }
        let doSample = try reader.optionalBool("do_sample") ?? false
        // Sampling without a seed: a fresh one per job (reported in the result), never the same text each time.
        let seed = try reader.optionalSeed("seed") ?? (doSample ? UInt64.random(in: 0...UInt64(Int64.max)) : 0)
        options = GenerationOptions(
            maxNewTokens: try reader.optionalInt("max_new_tokens", in: 0...Self.maxNewTokensLimit) ?? 50,
            doSample: doSample,
            temperature: Float(try reader.optionalDouble("temperature", in: 1e-3...100) ?? 1),
            topK: try reader.optionalInt("top_k", in: 0...1_000_000) ?? 0,
            topP: Float(try reader.optionalDouble("top_p", in: 1e-6...1) ?? 1),
            repetitionPenalty: Float(try reader.optionalDouble("repetition_penalty", in: 1e-3...100) ?? 1),
            seed: seed,
            stop: stop,
            stopAtEOS: try reader.optionalBool("stop_at_eos") ?? true)
        do {
            try options.validate()
        } catch {
            throw reader.failure("\(error)")
        }
        // transformers ignores sampling settings without do_sample (with a warning); a job refuses them, so its
        // text is never silently greedy when sampling was meant.
        if !doSample, let key = ["temperature", "top_k", "top_p", "seed"].first(where: { reader.has($0) }) {
            throw reader.failure(
                "\(key) applies only to sampling: add \"do_sample\": true (without it decoding is greedy)")
        }
    }

    /// The items of `prompts`: strings, or objects with "prompt" or "instruction" and an optional "input".
    private static func readItems(_ reader: PayloadReader) throws -> [(prompt: String, input: String?, field: String)] {
        guard let value = reader.object["prompts"], let list = value.arrayValue else {
            throw reader.failure(
                "prompts must be a list of strings or {\"prompt\", \"input\"} objects, got "
                    + (reader.object["prompts"]?.typeName ?? "nothing"))
        }
        guard !list.isEmpty else { throw reader.failure("prompts must hold at least one prompt") }
        guard list.count <= maxPrompts else {
            throw reader.failure("prompts has \(list.count) entries; the limit is \(maxPrompts)")
        }
        func text(_ value: JSONValue, _ field: String) throws -> String {
            guard let text = value.stringValue else {
                throw reader.failure("\(field) must be a string, got \(value.typeName)")
            }
            guard text.utf8.count <= maxPromptBytes else {
                throw reader.failure("\(field) is \(text.utf8.count) bytes long; the limit is \(maxPromptBytes)")
            }
            return text
        }
        return try list.enumerated().map { index, item in
            let field = "prompts[\(index)]"
            if item.stringValue != nil { return (try text(item, field), nil, field) }
            guard let object = item.objectValue else {
                throw reader.failure(
                    "\(field) must be a string, got \(item.typeName) (or an object {\"prompt\": …, \"input\": …})")
            }
            let unknown = object.keys.filter { !itemFields.contains($0) }.sorted()
            guard unknown.isEmpty else {
                throw reader.failure(
                    "\(field) has unknown field\(unknown.count > 1 ? "s" : "") "
                        + unknown.map { "\"\($0)\"" }.joined(separator: ", ") + "; allowed: instruction, input, prompt")
            }
            let prompt = object["prompt"].flatMap { $0 == .null ? nil : $0 }
            let instruction = object["instruction"].flatMap { $0 == .null ? nil : $0 }
            guard (prompt == nil) != (instruction == nil) else {
                throw reader.failure("\(field) needs exactly one of \"prompt\" and \"instruction\"")
            }
            let key = prompt == nil ? "instruction" : "prompt"
            let main = try text(prompt ?? instruction ?? .null, "\(field).\(key)")
            let input = try object["input"].flatMap { $0 == .null ? nil : try text($0, "\(field).input") }
            return (main, input, "\(field).input")
        }
    }
}
