// muwad serve: the daemon. Claims jobs from muwa.jobs and runs them until SIGTERM (see Daemon/Daemon.swift).
import ArgumentParser
import Executors
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Claim jobs from PostgreSQL and run them (the systemd service).",
        discussion: """
            Every option also reads an environment variable (MUWA_*), and an env file given by --env-file or \
            MUWA_ENV_FILE; see systemd/muwad.env.example. The first SIGTERM or SIGINT drains (running jobs \
            get the grace period, then are released back to the queue); a second one stops at once.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var queue: QueueOptions

    func run() async throws {
        let settings = try ServeSettings.resolve(
            connection: connection, queue: queue, servedKinds: StandardExecutors.kinds)
        LineLogHandler.bootstrap(level: settings.logLevel, format: settings.logFormat)
        let logger = Logger(label: "muwad")
        let status = try await Daemon.serve(
            settings: settings, makeRegistry: { StandardExecutors.registry(environment: $0) }, logger: logger)
        if status != 0 { throw ExitCode(status) }
    }
}
