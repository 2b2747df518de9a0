// The SQL compiled into the binary (Sources/Storage/EmbeddedSQL.swift) is exactly the .sql files of the source
// tree: the same statements, and migrations with the same checksums as when read from migrations/. When a .sql
// file changes, run scripts/embed-sql.sh.
import Foundation
import XCTest

@testable import Storage

final class EmbeddedSQLTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testEmbeddedStatementsAreTheSQLFiles() throws {
        let folder = Self.root.appendingPathComponent("Sources/Storage/SQL").path
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".sql") }.sorted()
        XCTAssertEqual(EmbeddedSQL.statements.map(\.name), names, "run scripts/embed-sql.sh")
        for (name, text) in EmbeddedSQL.statements {
            XCTAssertEqual(
                text, try String(contentsOfFile: folder + "/" + name, encoding: .utf8),
                "\(name): run scripts/embed-sql.sh")
        }
        XCTAssertEqual(try SQLLibrary.shared().mismatches().missing, [])
    }

    func testEmbeddedMigrationsAreTheMigrationFiles() throws {
        let fromDisk = try MigrationSet.load(directory: Self.root.appendingPathComponent("migrations").path)
        let embedded = try MigrationSet.embedded()
        XCTAssertEqual(embedded.migrations.map(\.name), fromDisk.migrations.map(\.name), "run scripts/embed-sql.sh")
        XCTAssertEqual(embedded.migrations.map(\.checksum), fromDisk.migrations.map(\.checksum))
        XCTAssertEqual(embedded.migrations, fromDisk.migrations)
    }
}
