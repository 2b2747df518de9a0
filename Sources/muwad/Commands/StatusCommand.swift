import ArgumentParser

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad status is not built yet") }
}
