import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "(under construction)")
    func run() async throws { throw ValidationError("muwad bench is not built yet") }
}
