import ArgumentParser

struct TokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad tokenize is not built yet") }
}
