// GenerateRequest: a `generate` job's payload, validated. Every mistake fails the job at once with a
// message naming the field; checks that need the model (prompt length against its positions) happen
// after loading, in GenerateJobExecutor.
//
//   {"model": "/srv/models/opt-125m", "prompt": "Hello"}                        one prompt
//   {"model": "…", "prompts": ["a", "b"], "max_new_tokens": 20, "do_sample": true,
//    "temperature": 0.7, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.1, "seed": 7,
//    "stop": ["\n\n"], "stop_at_eos": true}
import Foundation
import JobQueue
import OPTEngine
import Storage

struct GenerateRequest {
    static let fields: Set<String> = [
        "model", "prompt", "prompts", "max_new_tokens", "do_sample", "temperature", "top_k", "top_p",
        "repetition_penalty", "seed", "stop", "stop_at_eos",
    ]
    static let maxPrompts = 64
    static let maxPromptBytes = 256 << 10
    static let maxNewTokensLimit = 8192

    /// The model directory, standardized.
    let model: String
    let prompts: [String]
    /// True when the payload used `prompt` (a single string) rather than `prompts`.
    let single: Bool
    let options: GenerationOptions

    init(payload: JSONValue?) throws {
        let reader = try PayloadReader(kind: "generate", payload: payload)
        try reader.rejectUnknownKeys(Self.fields)

        let path = try reader.string("model")
        guard !path.isEmpty else { throw reader.failure("model must be the path of a checkpoint directory, got \"\"") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw reader.failure("model directory \(path) does not exist")
        }
        guard isDirectory.boolValue else { throw reader.failure("model \(path) is not a directory") }
        model = URL(fileURLWithPath: path).standardizedFileURL.path

        switch (reader.has("prompt"), reader.has("prompts")) {
        case (true, true):
            throw reader.failure("give either prompt (a string) or prompts (a list of strings), not both")
        case (false, false):
            throw reader.failure("prompt (a string) or prompts (a list of strings) is required")
        case (true, false):
            prompts = [try reader.optionalString("prompt", maxLength: Self.maxPromptBytes) ?? ""]
            single = true
        case (false, true):
            let list = try reader.optionalStringList("prompts", maxCount: Self.maxPrompts, maxLength: Self.maxPromptBytes) ?? []
            guard !list.isEmpty else { throw reader.failure("prompts must hold at least one prompt") }
            prompts = list
            single = false
        }

        let stop = try reader.optionalStringList("stop", maxCount: 16, maxLength: 256) ?? []
        if let index = stop.firstIndex(of: "") { throw reader.failure("stop[\(index)] must not be empty") }
        let doSample = try reader.optionalBool("do_sample") ?? false
        options = GenerationOptions(
            maxNewTokens: try reader.optionalInt("max_new_tokens", in: 0...Self.maxNewTokensLimit) ?? 50,
            doSample: doSample,
            temperature: Float(try reader.optionalDouble("temperature", in: 1e-3...100) ?? 1),
            topK: try reader.optionalInt("top_k", in: 0...1_000_000) ?? 0,
            topP: Float(try reader.optionalDouble("top_p", in: 1e-6...1) ?? 1),
            repetitionPenalty: Float(try reader.optionalDouble("repetition_penalty", in: 1e-3...100) ?? 1),
            seed: UInt64(try reader.optionalInt("seed", in: 0...(1 << 53)) ?? 0),
            stop: stop,
            stopAtEOS: try reader.optionalBool("stop_at_eos") ?? true)
        do {
            try options.validate()
        } catch {
            throw reader.failure("\(error)")
        }
    }
}
