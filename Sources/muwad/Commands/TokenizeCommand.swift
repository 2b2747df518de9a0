// muwad tokenize: the token ids the model sees for a text (BOS included).
import ArgumentParser
import OPTEngine

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Print the token ids of a text.")

    @Option(name: .long, help: "A directory with vocab.json + merges.txt or tokenizer.json.") var model: String
    @Option(name: .customLong("text")) var texts: [String]
    @Flag var json = false

    func run() throws {
        try withCleanErrors {
            let tokenizer = try BPETokenizer.load(directory: try HubCache.resolveDirectory(model))
            for text in texts {
                let ids = tokenizer.encode(text)
                if json {
                    printJSONLine(["text": text, "ids": ids, "tokens": ids.map { tokenizer.tokenString($0) ?? "" }])
                } else {
                    print(ids.map(String.init).joined(separator: " "))
                }
            }
        }
    }
}
