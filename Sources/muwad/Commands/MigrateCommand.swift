// muwad migrate: applies pending migrations (migrations/NNNN_name.up.sql) in order, each in a transaction,
// under an advisory lock; a second run does nothing. --to N migrates up or down to version N; --status only
// reports.
import ArgumentParser
import Logging
import Storage

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply pending database migrations (schema muwa).")

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customLong("to"), help: "Target version: migrate up or down to it (default: the newest).")
    var target: Int?

    @Flag(help: "Only show applied and pending migrations.")
    var status = false

    func run() async throws {
        let source = try connection.source()
        let levelName = source.string(connection.logLevel, env: "MUWA_LOG_LEVEL", default: "info")
        LineLogHandler.bootstrap(
            level: Logger.Level(name: levelName) ?? .info, format: try connection.logFormat(source))
        let logger = Logger(label: "muwad")
        do {
            let migrations = try MigrationSet.find(explicit: connection.migrationsFolder(source))
            let database = Database(settings: connection.connectionSettings(source), label: "migrate", logger: logger)
            let migrator = Migrator(database: database, migrations: migrations, logger: logger)
            if status {
                let current = try await migrator.status()
                for applied in current.applied { print("applied  \(applied.name)") }
                for pending in current.pending { print("pending  \(pending.name)") }
                for unknown in current.unknown { print("unknown  \(unknown.name) (newer than this muwad)") }
                for edited in current.edited { print("edited   \(edited.name) (file changed after it was applied)") }
                return
            }
            let steps = try await migrator.migrate(to: target)
            if steps.isEmpty {
                let newest = try await migrator.status().applied.last?.name ?? "nothing"
                print("the database is up to date (newest migration: \(newest))")
            } else {
                for step in steps { print("\(step.direction == .up ? "applied " : "reverted") \(step.migration)") }
            }
        } catch let error as StorageError {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}
