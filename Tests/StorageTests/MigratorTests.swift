// Migrations: applied in order and recorded, idempotent, serialized by the advisory lock, reversible, and
// `requireCurrent` names the first missing migration.
import Foundation
@testable import Storage
import XCTest
import TestSupport

final class MigratorTests: XCTestCase {
    static let name = "muwa_t_migrator"

    private func migrator(_ database: Database) throws -> Migrator {
        Migrator(
            database: database, migrations: try MigrationSet.load(directory: TestDatabase.migrationsDirectory),
            logger: TestDatabase.quietLogger)
    }

    func testAppliesAllInOrderThenNothing() async throws {
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "t", logger: TestDatabase.quietLogger)
        let migrator = try migrator(database)
        let first = try await migrator.migrate()
        XCTAssertEqual(first.map(\.migration), migrator.migrations.migrations.map(\.name))
        XCTAssertEqual(first.first?.migration, "0001_jobs")
        let second = try await migrator.migrate()
        XCTAssertEqual(second, [])
        let recorded = try await database.execute("SELECT version FROM muwa.schema_migrations ORDER BY version")
        XCTAssertEqual(try recorded.rows.map { try $0.int("version") }, [1, 2, 3, 4, 5, 6, 7, 8, 9])
        try await migrator.requireCurrent()
    }

    func testConcurrentMigratorsApplyEachMigrationOnce() async throws {
        let settings = try TestDatabase.fresh(Self.name)
        let a = try migrator(Database(settings: settings, label: "a", logger: TestDatabase.quietLogger))
        let b = try migrator(Database(settings: settings, label: "b", logger: TestDatabase.quietLogger))
        async let stepsA = a.migrate()
        async let stepsB = b.migrate()
        let (doneA, doneB) = try await (stepsA, stepsB)
        XCTAssertEqual(doneA.count + doneB.count, 9, "the advisory lock lets one of them do everything")
        XCTAssertTrue(doneA.isEmpty || doneB.isEmpty)
    }

    func testRequireCurrentNamesTheMissingMigrationAndDownUpWorks() async throws {
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "t", logger: TestDatabase.quietLogger)
        let migrator = try migrator(database)
        try await migrator.migrate(to: 2)
        do {
            try await migrator.requireCurrent()
            XCTFail("expected a schema mismatch")
        } catch let error as StorageError {
            XCTAssertEqual(error.code, .schemaMismatch)
            XCTAssertTrue(error.message.contains("migration 0003_sql_api is missing"), error.message)
            XCTAssertTrue(error.message.contains("muwad migrate"), error.message)
        }
        try await migrator.migrate()
        let down = try await migrator.migrate(to: 1)
        XCTAssertEqual(
            down.map(\.migration),
            [
                "0009_schedules", "0008_queue_pauses", "0007_adapter_versions", "0006_roles", "0005_job_results",
                "0004_dashboard_views", "0003_sql_api", "0002_workers",
            ])
        XCTAssertEqual(down.map(\.direction), Array(repeating: .down, count: 8))
        let value1 = try await database.scalar("SELECT to_regclass('muwa.workers') IS NULL")
        XCTAssertEqual(value1, "t")
        try await migrator.migrate()
        try await migrator.requireCurrent()
    }

    func testAFailingMigrationRollsBackAndSaysWhich() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-migrations-\(getpid())").path
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "CREATE TABLE muwa.a (x int);".write(toFile: folder + "/0001_a.up.sql", atomically: true, encoding: .utf8)
        try "CREATE TABLE muwa.b (x int); SELECT no_such_function();"
            .write(toFile: folder + "/0002_b.up.sql", atomically: true, encoding: .utf8)
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "t", logger: TestDatabase.quietLogger)
        let migrator = Migrator(
            database: database, migrations: try MigrationSet.load(directory: folder), logger: TestDatabase.quietLogger)
        do {
            try await migrator.migrate()
            XCTFail("expected the second migration to fail")
        } catch let error as StorageError {
            XCTAssertTrue(error.description.contains("0002_b.up.sql"), error.description)
        }
        let value2 = try await database.scalar("SELECT to_regclass('muwa.a') IS NOT NULL")
        XCTAssertEqual(value2, "t")
        let value3 = try await database.scalar("SELECT to_regclass('muwa.b') IS NULL")
        XCTAssertEqual(value3, "t", "rolled back")
        let value4 = try await migrator.status().pending.map(\.name)
        XCTAssertEqual(value4, ["0002_b"])
    }

    func testMigrationFileNames() throws {
        XCTAssertEqual(MigrationSet.parse(fileName: "0003_sql_api.up.sql")?.name, "0003_sql_api")
        XCTAssertEqual(MigrationSet.parse(fileName: "0003_sql_api.down.sql")?.isDown, true)
        XCTAssertEqual(MigrationSet.parse(fileName: "0007_plain.sql")?.version, 7)
        XCTAssertNil(MigrationSet.parse(fileName: "3_short.sql"))
        XCTAssertNil(MigrationSet.parse(fileName: "0003-dash.sql"))
        XCTAssertNil(MigrationSet.parse(fileName: "0003_Upper.sql"))
        let set = try MigrationSet.load(directory: TestDatabase.migrationsDirectory)
        XCTAssertTrue(set.migrations.allSatisfy { $0.down != nil }, "every migration has a down file")
    }
}
