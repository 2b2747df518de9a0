import ArgumentParser

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad serve is not built yet") }
}
