// muwad score: log-likelihood and perplexity of texts (tokens after the BOS), optionally with a LoRA
// adapter (--adapter DIR, --merge).
import ArgumentParser
import Foundation
import OPTEngine

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score", abstract: "Score texts: log-likelihood and perplexity.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOptions: AdapterOptions
    @Option(name: .customLong("text"), help: "A text to score (repeatable).") var texts: [String]
    @Flag var json = false

    func validate() throws {
        guard !texts.isEmpty else { throw ValidationError("give at least one --text") }
    }

    func run() throws {
        try withCleanAdapterErrors {
            let (model, delta) = try adapterOptions.apply(to: try modelOptions.loadModel())
            let scorer = Scorer(model: model, tokenizer: try modelOptions.loadTokenizer())
            for result in try scorer.score(texts: texts, delta: delta) {
                if json {
                    printJSONLine([
                        "tokens": result.tokens, "logprobs": result.logprobs.map(Double.init),
                        "sum_logprob": result.sumLogprob,
                        "perplexity": result.perplexity.isFinite ? result.perplexity : NSNull(),
                    ])
                } else {
                    print(
                        String(
                            format: "sum_logprob %.6f  tokens %d  perplexity %.6f",
                            result.sumLogprob, result.logprobs.count, result.perplexity))
                }
            }
        }
    }
}
