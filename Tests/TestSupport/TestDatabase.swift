// TestSupport: what the test targets share — a fresh database per test class on the server scripts/test.sh
// starts (MUWA_TEST_DATABASE_URL; without it the tests skip locally and fail under CI=true), LOGIN roles for
// the role tests, and `waitUntil`, the one way tests wait (always with a deadline).
import Foundation
import Logging
import Storage
import XCTest

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

public enum TestDatabase {
    /// The test server, or a skip (locally) / an error (CI=true) when it is not configured.
    public static func server() throws -> ConnectionSettings {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["MUWA_TEST_DATABASE_URL"], !url.isEmpty else {
            if environment["CI"] == "true" {
                throw TestSetupError(
                    description: "MUWA_TEST_DATABASE_URL is not set under CI=true: run scripts/test.sh")
            }
            throw XCTSkip(
                "MUWA_TEST_DATABASE_URL is not set; scripts/test.sh starts a private PostgreSQL for these tests")
        }
        return ConnectionSettings(conninfo: url, applicationName: "muwa-tests")
    }

    /// Drops and re-creates database `name` (not migrated); returns settings pointing at it.
    public static func fresh(_ name: String, encoding: String = "UTF8") throws -> ConnectionSettings {
        let server = try server()
        let admin = try PGConnection.connect(server)
        _ = try admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        _ = try admin.execute(
            "CREATE DATABASE \(name) TEMPLATE template0 ENCODING '\(encoding)' LC_COLLATE 'C' LC_CTYPE 'C'")
        return server.withDatabase(name)
    }

    /// The repository's migrations folder.
    public static var migrationsDirectory: String {
        repositoryRoot.appendingPathComponent("migrations").path
    }

    /// The repository's root folder.
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// A fresh database `name`, migrated in-process with the repository's migrations.
    public static func migrated(_ name: String) async throws -> Database {
        let database = Database(settings: try fresh(name), label: name, logger: quietLogger)
        let migrator = Migrator(
            database: database, migrations: try MigrationSet.load(directory: migrationsDirectory), logger: quietLogger)
        try await migrator.migrate()
        return database
    }

    public static var quietLogger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    /// Makes LOGIN role `login` (cluster-wide, so created only if missing) a member of `group`.
    public static func createLogin(_ login: String, in group: String, on database: Database) async throws {
        _ = try await database.execute(
            """
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '\(login)') THEN CREATE ROLE \(login) LOGIN; END IF;
            END $$
            """)
        _ = try await database.execute("GRANT \(group) TO \(login)")
    }

    /// A connection to the same database as `login` (the test server trusts local connections).
    public static func connect(_ database: Database, as login: String) -> Database {
        let settings = ConnectionSettings(
            conninfo: database.settings.conninfo + " user=\(login)", applicationName: "muwa-tests")
        return Database(settings: settings, label: login, logger: quietLogger)
    }
}

extension Database {
    /// The first column of the first row, as text.
    public func scalar(_ sql: String, _ parameters: [String?] = []) async throws -> String? {
        let result = try await execute(sql, parameters)
        guard let column = result.columns.first, let row = result.first else { return nil }
        return try row.text(column)
    }

    /// Every row's first column.
    public func column(_ sql: String, _ parameters: [String?] = []) async throws -> [String?] {
        let result = try await execute(sql, parameters)
        guard let column = result.columns.first else { return [] }
        return try result.rows.map { try $0.text(column) }
    }

    /// The first row of a query, or an error naming the query.
    public func firstRow(_ sql: String, _ parameters: [String?] = []) async throws -> Row {
        guard let row = try await execute(sql, parameters).first else {
            throw TestSetupError(description: "no row from \(sql)")
        }
        return row
    }
}

/// Polls `condition` every 20 ms until it holds; fails the test after `seconds`.
public func waitUntil(
    seconds: Double = 10, file: StaticString = #filePath, line: UInt = #line, _ condition: () async throws -> Bool
) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    XCTFail("condition not met within \(seconds) s", file: file, line: line)
}
