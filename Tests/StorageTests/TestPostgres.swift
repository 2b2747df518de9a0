// TestPostgres: a fresh database per test class on the server scripts/test.sh starts
// (MUWA_TEST_DATABASE_URL). Without that variable the tests skip locally and fail under CI=true.
import Foundation
import Logging
import Storage
import XCTest

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

enum TestPostgres {
    /// The test server, or a skip (locally) / an error (CI=true) when it is not configured.
    static func server() throws -> ConnectionSettings {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["MUWA_TEST_DATABASE_URL"], !url.isEmpty else {
            if environment["CI"] == "true" {
                throw TestSetupError(description: "MUWA_TEST_DATABASE_URL is not set under CI=true: run scripts/test.sh")
            }
            throw XCTSkip("MUWA_TEST_DATABASE_URL is not set; scripts/test.sh starts a private PostgreSQL for these tests")
        }
        return ConnectionSettings(conninfo: url, applicationName: "muwa-tests")
    }

    /// Drops and re-creates database `name`; returns settings pointing at it.
    static func freshDatabase(_ name: String, encoding: String = "UTF8") throws -> ConnectionSettings {
        let server = try server()
        let admin = try PGConnection.connect(server)
        _ = try admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        _ = try admin.execute(
            "CREATE DATABASE \(name) TEMPLATE template0 ENCODING '\(encoding)' LC_COLLATE 'C' LC_CTYPE 'C'")
        return server.withDatabase(name)
    }

    /// The repository's migrations folder.
    static var migrationsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations").path
    }

    static func migrated(_ name: String) async throws -> Database {
        let settings = try freshDatabase(name)
        let database = Database(settings: settings, label: name, logger: quietLogger)
        let migrator = Migrator(
            database: database, migrations: try MigrationSet.load(directory: migrationsDirectory), logger: quietLogger)
        try await migrator.migrate()
        return database
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }
}

extension Database {
    /// The first column of the first row, as text.
    func scalar(_ sql: String, _ parameters: [String?] = []) async throws -> String? {
        let result = try await execute(sql, parameters)
        guard let column = result.columns.first, let row = result.first else { return nil }
        return try row.text(column)
    }
}
