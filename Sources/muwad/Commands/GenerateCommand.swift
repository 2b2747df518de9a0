import ArgumentParser

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad generate is not built yet") }
}
