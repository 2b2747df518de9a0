// Issue 9 with real daemons: a job whose daemon is killed twice while running it fails permanently instead of
// taking down worker after worker; the start-up line and the "waiting for the database" warnings never show
// a password, however it is written.
import Foundation
import Storage
import XCTest
import TestSupport

final class HardeningDaemonTests: XCTestCase {
    static let name = "muwa_t_hardening_daemon"
    static let secret = "Sup3r S3cret"

    func testAJobThatKillsItsDaemonTwiceFailsForGood() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let id = try unwrapped(
            try await database.scalar(
                #"SELECT muwa.enqueue('ping', '{"sleep_ms": 60000}', max_attempts => 10)"#))
        var holders: [String] = []
        for round in 1...2 {
            let victim = try DaemonProcess(settings, name: "killed-\(round)")
            try await eventually(20, victim.log) {
                let holder =
                    try await database.scalar(
                        "SELECT worker_id FROM muwa.jobs WHERE id = $1 AND status = 'running'", [id]) ?? ""
                return holder.contains(":\(victim.pid):")
            }
            holders.append(try await database.scalar("SELECT worker_id FROM muwa.jobs WHERE id = $1", [id]) ?? "")
            victim.signal(SIGKILL)
            let status = await victim.waitForExit(seconds: 5)
            XCTAssertEqual(status, 128 + SIGKILL)
        }
        let survivor = try DaemonProcess(settings, name: "survivor")
        try await eventually(20, survivor.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "failed"
        }
        let row = try await database.firstRow(
            "SELECT attempt, errors->-1->>'message' AS message FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(try row.int("attempt"), 2, "not run a third time, though max_attempts is 10")
        let message = try row.string("message")
        XCTAssertTrue(message.contains("the worker running this job stopped twice"), message)
        XCTAssertTrue(message.contains(holders[1]), message)
        let runs = try await database.column("SELECT outcome FROM muwa.job_runs WHERE job_id = $1 ORDER BY id", [id])
        XCTAssertEqual(runs, ["lost", "lost"])
        // The queue goes on.
        let ping = try unwrapped(try await database.scalar("SELECT muwa.enqueue('ping', '{}')"))
        try await eventually(10, survivor.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [ping]) == "succeeded"
        }
        await survivor.stop()
    }

    func testTheLimitSettingsAreChecked() throws {
        for (arguments, expected) in [
            (["--default-time-limit", "0"], "default time limit must be positive"),
            (["--default-time-limit", "soon"], "--default-time-limit must be a duration"),
            (["--max-lost-runs=-1"], "max lost runs must be 0…1000"),
        ] {
            let result = try Harness.runMuwad(["serve", "--database-url", "host=/nonexistent-muwa-dir"] + arguments)
            XCTAssertNotEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains(expected), result.output)
        }
    }

    func testTheStartUpLineAndReconnectWarningsHideThePassword() async throws {
        let (settings, _) = try Harness.migratedDatabase(Self.name)
        // A reachable server (it trusts local connections, so the password is not even checked) …
        let withPassword = ConnectionSettings(conninfo: settings.conninfo + " password = '\(Self.secret)'")
        let daemon = try DaemonProcess(
            withPassword, name: "password", arguments: ["--default-time-limit", "12h", "--max-lost-runs", "3"])
        try await eventually(15, daemon.log) {
            daemon.log.contains("database password=***") || daemon.log.contains("password=***")
        }
        await daemon.stop()
        XCTAssertTrue(daemon.log.contains("default time limit 43200.0 s, max lost runs 3"), daemon.log)
        XCTAssertFalse(daemon.log.contains("Sup3r"), daemon.log)
        XCTAssertFalse(daemon.log.contains("S3cret"), daemon.log)

        // … and one that is not there: the start-up line and the warnings while waiting for it.
        for conninfo in [
            "host=/nonexistent-muwa-dir port=5999 password = '\(Self.secret)' dbname=x connect_timeout=1",
            "postgresql://muwa:Sup3rS3cret@%2Fnonexistent-muwa-dir:5999/x?connect_timeout=1",
            "postgresql://muwa@%2Fnonexistent-muwa-dir:5999/x?password=Sup3rS3cret&connect_timeout=1",
        ] {
            let waiting = try DaemonProcess(ConnectionSettings(conninfo: conninfo), name: "waiting")
            try await eventually(15, waiting.log) { waiting.log.contains("waiting for the database") }
            await waiting.stop()
            XCTAssertTrue(waiting.log.contains("password=***"), waiting.log)
            XCTAssertFalse(waiting.log.contains("Sup3r"), waiting.log)
            XCTAssertFalse(waiting.log.contains("S3cret"), waiting.log)
        }
    }
}

/// XCTUnwrap for values that need `await` (XCTUnwrap's autoclosure cannot await).
func unwrapped<T>(_ value: T?, _ what: String = "a value", file: StaticString = #filePath, line: UInt = #line) throws
    -> T
{
    guard let value else {
        XCTFail("expected \(what), got nil", file: file, line: line)
        throw UnwrapError(description: "missing \(what)")
    }
    return value
}

struct UnwrapError: Error, CustomStringConvertible {
    let description: String
}
