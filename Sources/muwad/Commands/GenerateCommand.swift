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
    @Option var temperature: Float = 1
    @Option(name: .customLong("top-k")) var topK = 0
    @Option(name: .customLong("top-p")) var topP: Float = 1
    @Option(name: .customLong("repetition-penalty")) var repetitionPenalty: Float = 1
    @Option var seed: UInt64 = 0
    @Option(name: .customLong("stop"), help: "A stop string (repeatable).") var stop: [String] = []
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past </s>.") var ignoreEOS = false
    @Flag var json = false

    func validate() throws {
        guard !prompts.isEmpty else { throw ValidationError("give at least one --prompt") }
    }

    func run() throws {
        try withCleanAdapterErrors {
            let options = GenerationOptions(
                maxNewTokens: maxNewTokens, doSample: doSample, temperature: temperature, topK: topK, topP: topP,
                repetitionPenalty: repetitionPenalty, seed: seed, stop: stop, stopAtEOS: !ignoreEOS)
            try options.validate()
            let tokenizer = try modelOptions.loadTokenizer()
            let (model, delta) = try adapterOptions.apply(to: try modelOptions.loadModel())
            let generator = Generator(model: model, tokenizer: tokenizer)
            let outputs = try generator.generate(prompts: prompts, options: options, delta: delta)
            for (prompt, out) in zip(prompts, outputs) {
                if json {
                    printJSONLine(["prompt": prompt, "text": out.text, "token_ids": out.tokenIds,
                                   "finish_reason": out.finishReason.rawValue,
                                   "prompt_tokens": out.promptTokenCount])
                } else {
                    print(prompt + out.text)
                }
            }
        }
    }
}
