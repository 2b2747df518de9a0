import ArgumentParser

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad migrate is not built yet") }
}
