// Passwords never reach a log line: ConnectionSettings.redacted parses the connection string with libpq
// (PQconninfoParse), so every way of writing a password is caught — spaces around '=', quotes, escapes,
// tabs, URL user:password@ and ?password= — and a string libpq cannot parse is not shown at all.
import Foundation
import Storage
import XCTest

final class RedactionTests: XCTestCase {
    let secret = "Sup3rS3cret"

    private func assertHidden(
        _ conninfo: String, keeps fragments: [String] = [], file: StaticString = #filePath, line: UInt = #line
    ) {
        let shown = ConnectionSettings(conninfo: conninfo).redacted
        XCTAssertFalse(shown.contains("Sup3r"), "\(conninfo) → \(shown)", file: file, line: line)
        XCTAssertFalse(shown.contains("S3cret"), "\(conninfo) → \(shown)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(shown.contains(fragment), "\(fragment) missing from \(shown)", file: file, line: line)
        }
    }

    func testEveryFormOfPasswordIsHidden() {
        assertHidden("host=db password=\(secret) dbname=muwa", keeps: ["host=db", "dbname=muwa", "password=***"])
        assertHidden("host=db password = \(secret) dbname=muwa", keeps: ["host=db", "dbname=muwa", "password=***"])
        assertHidden("host=db password\t=\t\(secret)\tdbname=muwa", keeps: ["host=db", "dbname=muwa"])
        assertHidden("host=db password='\(secret) with spaces' dbname=muwa", keeps: ["password=***"])
        assertHidden("host=db password='it\\'s \(secret)' dbname=muwa", keeps: ["password=***", "dbname=muwa"])
        assertHidden("password=\(secret)", keeps: ["password=***"])
        assertHidden(
            "postgresql://muwa:\(secret)@db.example:5433/jobs", keeps: ["user=muwa", "host=db.example", "port=5433"])
        assertHidden("postgres://muwa:\(secret)@db.example/jobs?sslmode=require", keeps: ["sslmode=require"])
        assertHidden("postgresql://muwa@db.example/jobs?password=\(secret)&application_name=x", keeps: ["user=muwa"])
        assertHidden("postgresql://muwa@db.example/jobs?sslpassword=\(secret)", keeps: ["sslpassword=***"])
        assertHidden("postgresql://muwa:%53up3r%53%33cret@db/jobs")  // percent-encoded: hidden after decoding too
    }

    func testUnparseableStringsAreNotShown() {
        for broken in [
            "host=db password \(secret)", "host=db password='\(secret)", "postgresql://u:\(secret)@db/x?nonsense=1",
            "\(secret)",
        ] {
            let settings = ConnectionSettings(conninfo: broken)
            XCTAssertEqual(settings.redacted, "(a connection string libpq cannot parse; not shown)", broken)
            XCTAssertFalse(settings.conninfoParses)
        }
        XCTAssertEqual(ConnectionSettings(conninfo: " ").redacted, "(libpq defaults / PG* environment)")
    }

    func testConnectErrorsDoNotQuoteTheString() {
        // libpq's own message would be: missing "=" after "Sup3rS3cret" in connection info string.
        do {
            _ = try PGConnection.connect(ConnectionSettings(conninfo: "host=/nonexistent password \(secret)"))
            XCTFail("expected a connection failure")
        } catch {
            XCTAssertFalse("\(error)".contains("Sup3r"), "\(error)")
        }
        do {
            _ = try PGConnection.connect(
                ConnectionSettings(
                    conninfo: "host=/nonexistent-muwa-socket-dir password = '\(secret)' connect_timeout=1"))
            XCTFail("expected a connection failure")
        } catch {
            XCTAssertFalse("\(error)".contains("Sup3r"), "\(error)")
            XCTAssertTrue("\(error)".contains("password=***"), "\(error)")
        }
    }
}
