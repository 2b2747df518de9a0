import ArgumentParser

struct ScoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "score", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad score is not built yet") }
}
