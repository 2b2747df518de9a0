// `muwad bench-queue` starts its daemons with the connection string in their environment, never on their
// command line (any local user can read /proc/PID/cmdline).
import Foundation
import Storage
import XCTest

@testable import muwad

final class BenchQueueInvocationTests: XCTestCase {
    func testTheConnectionStringTravelsInTheEnvironment() {
        let conninfo = "host=db password = 'Sup3rS3cret' dbname=muwa"
        let invocation = BenchQueueCommand.daemonInvocation(
            queue: "bench-1", concurrency: 2, settings: ConnectionSettings(conninfo: conninfo),
            migrationsDirectory: "/srv/migrations", environment: ["PATH": "/usr/bin", "MUWA_DATABASE_URL": "old"])
        XCTAssertFalse(invocation.arguments.joined(separator: " ").contains("Sup3r"), "\(invocation.arguments)")
        XCTAssertFalse(invocation.arguments.contains("--database-url"))
        XCTAssertEqual(invocation.environment["MUWA_DATABASE_URL"], conninfo)
        XCTAssertEqual(invocation.environment["PATH"], "/usr/bin")
        XCTAssertTrue(invocation.arguments.contains("--migrations-dir"))
    }
}
