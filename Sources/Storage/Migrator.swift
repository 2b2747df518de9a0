// Migrator: applies the numbered migrations in order, each in its own transaction, under a session
// advisory lock (two `muwad migrate` at once serialize; the second finds nothing to do), recording each in
// muwa.schema_migrations. `requireCurrent()` is the check `muwad serve` runs before it claims anything.
import Logging

/// What the database has compared with the migration files.
public struct MigrationStatus: Sendable {
    /// Versions recorded in muwa.schema_migrations, with the name and checksum recorded then.
    public var applied: [(version: Int, name: String, checksum: String)]
    /// Files not applied yet, in order.
    public var pending: [Migration]
    /// Applied versions this binary has no file for (the database is newer than this binary).
    public var unknown: [(version: Int, name: String)]
    /// Applied migrations whose file changed since.
    public var edited: [Migration]

    public var isCurrent: Bool { pending.isEmpty }
}

/// One applied (or reverted) migration.
public struct MigrationStep: Sendable, Equatable {
    public enum Direction: String, Sendable { case up, down }
    public let migration: String
    public let direction: Direction
}

/// Brings a database's `muwa` schema to the version of the migration files.
public struct Migrator: Sendable {
    public let database: Database
    public let migrations: MigrationSet
    private let logger: Logger

    public init(database: Database, migrations: MigrationSet, logger: Logger) {
        self.database = database
        self.migrations = migrations
        self.logger = logger
    }

    /// Compares the database with the files (no lock, no writes).
    public func status() async throws -> MigrationStatus {
        let files = migrations.migrations
        return try await database.withConnection { connection in
            try Self.status(connection, files: files)
        }
    }

    /// Throws ``StorageError/Code/schemaMismatch`` naming the first missing migration when the database is
    /// behind; logs a warning when it is ahead or an applied file was edited.
    public func requireCurrent() async throws {
        let status = try await status()
        if let first = status.pending.first {
            let others = status.pending.count > 1 ? " (and \(status.pending.count - 1) more after it)" : ""
            let applied = status.applied.last.map { "the newest applied is \($0.name)" } ?? "none is applied"
            throw StorageError(
                .schemaMismatch,
                "the database schema is older than this muwad: migration \(first.name) is missing\(others); "
                    + "\(applied). Run `muwad migrate` first.")
        }
        for unknown in status.unknown {
            logger.warning("database has migration \(unknown.name), which this muwad does not know (newer schema)")
        }
        for edited in status.edited {
            logger.warning("migration \(edited.name) was edited after it was applied (checksum differs)")
        }
    }

    /// Applies pending migrations up to `target` (default: all), or reverts down to `target` when it is
    /// below the newest applied version. Returns what it did; an up-to-date database yields `[]`.
    @discardableResult
    public func migrate(to target: Int? = nil) async throws -> [MigrationStep] {
        let files = migrations.migrations
        let logger = self.logger
        return try await database.withConnection { connection in
            let lock = try SQLLibrary.shared().sql(for: .migratorLock)
            _ = try connection.execute(lock, statement: SQLStatement.migratorLock.rawValue)
            defer {
                if let unlock = try? SQLLibrary.shared().sql(for: .migratorUnlock) {
                    _ = try? connection.execute(unlock, statement: SQLStatement.migratorUnlock.rawValue)
                }
            }
            try connection.executeScript(
                try SQLLibrary.shared().sql(for: .migratorBootstrap), statement: SQLStatement.migratorBootstrap.rawValue
            )
            let status = try Self.status(connection, files: files)
            let newest = status.applied.last?.version ?? 0
            let goal = target ?? (files.last?.version ?? 0)
            var steps: [MigrationStep] = []
            if goal >= newest {
                for migration in status.pending where migration.version <= goal {
                    try Self.apply(connection, migration, direction: .up, logger: logger)
                    steps.append(MigrationStep(migration: migration.name, direction: .up))
                }
            } else {
                let byVersion = Dictionary(uniqueKeysWithValues: files.map { ($0.version, $0) })
                for applied in status.applied.reversed() where applied.version > goal {
                    guard let migration = byVersion[applied.version] else {
                        throw StorageError(
                            .missingResource, "cannot revert \(applied.name): this muwad has no file for it")
                    }
                    try Self.apply(connection, migration, direction: .down, logger: logger)
                    steps.append(MigrationStep(migration: migration.name, direction: .down))
                }
            }
            return steps
        }
    }

    // MARK: - On the database queue

    private static func status(_ connection: PGConnection, files: [Migration]) throws -> MigrationStatus {
        let library = try SQLLibrary.shared()
        let present = try connection.execute(try library.sql(for: .migratorHasTable)).first?.bool("present") ?? false
        var applied: [(version: Int, name: String, checksum: String)] = []
        if present {
            for row in try connection.execute(try library.sql(for: .migratorApplied)).rows {
                applied.append((try row.int("version"), try row.string("name"), try row.string("checksum")))
            }
        }
        let appliedVersions = Dictionary(applied.map { ($0.version, $0.checksum) }, uniquingKeysWith: { a, _ in a })
        let fileVersions = Set(files.map(\.version))
        return MigrationStatus(
            applied: applied,
            pending: files.filter { appliedVersions[$0.version] == nil },
            unknown: applied.filter { !fileVersions.contains($0.version) }.map { ($0.version, $0.name) },
            edited: files.filter { file in appliedVersions[file.version].map { $0 != file.checksum } ?? false })
    }

    private static func apply(
        _ connection: PGConnection, _ migration: Migration, direction: MigrationStep.Direction, logger: Logger
    ) throws {
        let library = try SQLLibrary.shared()
        let script: String
        switch direction {
        case .up:
            script = migration.up
        case .down:
            guard let down = migration.down else {
                throw StorageError(.missingResource, "cannot revert \(migration.name): it has no .down.sql file")
            }
            script = down
        }
        _ = try connection.execute("BEGIN")
        do {
            try connection.executeScript(script, statement: "\(migration.name).\(direction.rawValue).sql")
            switch direction {
            case .up:
                _ = try connection.execute(
                    try library.sql(for: .migratorRecord),
                    [String(migration.version), migration.name, migration.checksum])
            case .down:
                _ = try connection.execute(try library.sql(for: .migratorForget), [String(migration.version)])
            }
            _ = try connection.execute("COMMIT")
        } catch {
            if connection.isOK { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
        logger.debug("migration \(migration.name) \(direction == .up ? "applied" : "reverted")")
    }
}
