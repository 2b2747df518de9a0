// muwad generate: prompts in, generated text out (plain, or one JSON object per prompt per line),
// optionally with a LoRA adapter (--adapter DIR, --merge).
import ArgumentParser
import OPTEngine

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate text from prompts.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions
    @Option(name: .customLong("prompt"), help: "A prompt (repeat for a batch).") var prompts: [String]
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 50
    @Flag(name: .customLong("do-sample"), help: "Sample instead of greedy decoding.") var doSample = false
    @Option(help: "Sampling temperature (needs --do-sample; default 1).") var temperature: Float?
    @Option(
        name: .customLong("top-k"), help: "Sample among the k likeliest tokens (needs --do-sample; default 0: all).")
    var topK: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass (needs --do-sample; default 1).") var topP: Float?
    @Option(name: .customLong("repetition-penalty")) var repetitionPenalty: Float = 1
    @Option(help: "Sampling seed (default: a random one, printed with --json).") var seed: UInt64?
    @Option(name: .customLong("stop"), help: "A stop string (repeatable).") var stop: [String] = []
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past </s>.") var ignoreEOS = false
    @Flag var json = false

    func validate() throws {
        guard !prompts.isEmpty else { throw ValidationError("give at least one --prompt") }
        // transformers ignores sampling settings without do_sample (with a warning); muwad refuses them, so
        // that the text is never silently greedy when sampling was meant.
        let sampling = [
            ("--temperature", temperature != nil), ("--top-k", topK != nil), ("--top-p", topP != nil),
            ("--seed", seed != nil),
        ].filter(\.1).map(\.0)
        if !doSample, let first = sampling.first {
            throw ValidationError("\(first) applies only to sampling: add --do-sample (without it decoding is greedy)")
        }
    }

    func run() throws {
        try withCleanAdapterErrors {
            // Sampling without --seed: a fresh seed each run (reported with --json, to repeat the run).
            let seed = self.seed ?? (doSample ? UInt64.random(in: 0...(1 << 53)) : 0)
            let options = GenerationOptions(
                maxNewTokens: maxNewTokens, doSample: doSample, temperature: temperature ?? 1, topK: topK ?? 0,
                topP: topP ?? 1, repetitionPenalty: repetitionPenalty, seed: seed, stop: stop, stopAtEOS: !ignoreEOS)
            try options.validate()
            let tokenizer = try modelOptions.loadTokenizer()
            let (model, delta) = try adapterOptions.apply(to: try modelOptions.loadModel())
            let positions = model.config.maxPositionEmbeddings
            for prompt in prompts {
                let length = tokenizer.encode(prompt).count
                if length < positions, length + maxNewTokens > positions {
                    warn(
                        "a prompt of \(length) tokens leaves room for \(positions - length) new tokens, not "
                            + "\(maxNewTokens): the model has \(positions) positions, so it stops there (finish_reason \"length\")"
                    )
                }
            }
            let generator = Generator(model: model, tokenizer: tokenizer)
            let outputs = try generator.generate(prompts: prompts, options: options, delta: delta)
            for (prompt, out) in zip(prompts, outputs) {
                if json {
                    var line: [String: Any] = [
                        "prompt": prompt, "text": out.text, "token_ids": out.tokenIds,
                        "finish_reason": out.finishReason.rawValue, "prompt_tokens": out.promptTokenCount,
                    ]
                    if doSample { line["seed"] = seed }
                    printJSONLine(line)
                } else {
                    print(prompt + out.text)
                }
            }
        }
    }
}
