// muwad: the command-line entry point. Each subcommand lives in its own file (Commands/…).
import ArgumentParser

@main
struct Muwad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muwad",
        abstract: "A batch worker for OPT language models: generate, fine-tune and evaluate jobs from PostgreSQL.",
        version: MuwadVersion.current,
        subcommands: [
            GenerateCommand.self, ScoreCommand.self, TokenizeCommand.self, BenchCommand.self,
            RunCommand.self, ExportCommand.self, MigrateCommand.self, ServeCommand.self, StatusCommand.self,
            BenchQueueCommand.self,
        ]
    )
}
