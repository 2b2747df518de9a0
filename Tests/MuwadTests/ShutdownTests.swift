// SIGTERM: stop claiming, let a short job finish, release one that cannot finish within the grace period
// (its attempt not counted), exit 0 within the grace period; a second signal exits at once and leaves the
// job to the lease.
import Foundation
import Storage
import XCTest
import TestSupport

final class ShutdownTests: XCTestCase {
    static let name = "muwa_t_shutdown"

    func testSIGTERMLetsAShortJobFinishAndExitsZero() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let daemon = try DaemonProcess(settings, name: "short", environment: ["MUWA_GRACE_PERIOD": "5s"])
        let id = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 1500}')"#)
        let queuedLater = try await database.scalar(
            #"SELECT muwa.enqueue('ping', '{}', run_at => now() + interval '2 seconds')"#)
        try await eventually(10, daemon.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "running"
        }
        daemon.signal(SIGTERM)
        let status = await daemon.waitForExit(seconds: 60)
        XCTAssertEqual(status, 0, daemon.log)
        XCTAssertFalse(daemon.log.contains("job released"), "finished within the grace period: \(daemon.log)")
        let finished = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(finished, "succeeded")
        let untouched = try await database.scalar(
            "SELECT status || ' ' || attempt FROM muwa.jobs WHERE id = $1", [queuedLater])
        XCTAssertEqual(untouched, "queued 0", "no claims after SIGTERM")
        XCTAssertTrue(daemon.log.contains("SIGTERM received: draining"), daemon.log)
    }

    func testSIGTERMReleasesAJobThatCannotFinishAndAnotherWorkerTakesIt() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let daemon = try DaemonProcess(
            settings, name: "release", environment: ["MUWA_GRACE_PERIOD": "1s", "MUWA_STOP_TIMEOUT": "2s"])
        let id = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 4000}')"#)
        try await eventually(10, daemon.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "running"
        }
        daemon.signal(SIGTERM)
        let status = await daemon.waitForExit(seconds: 60)
        XCTAssertEqual(status, 0, daemon.log)
        let row = try await database.firstRow(
            "SELECT status, attempt, jsonb_array_length(errors) AS errors FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(try row.string("status"), "queued")
        XCTAssertEqual(try row.int("attempt"), 0, "a release does not use up an attempt")
        XCTAssertEqual(try row.int("errors"), 0)
        let outcome = try await database.scalar("SELECT outcome FROM muwa.job_runs WHERE job_id = $1", [id])
        XCTAssertEqual(outcome, "released")
        XCTAssertTrue(daemon.log.contains("job released"), daemon.log)

        let next = try DaemonProcess(settings, name: "release-next")
        try await eventually(15, next.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
        }
        let attempt = try await database.scalar("SELECT attempt FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(attempt, "1")
        await next.stop()
    }

    func testASecondSignalStopsAtOnceAndTheLeaseBringsTheJobBack() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let daemon = try DaemonProcess(settings, name: "twice", environment: ["MUWA_GRACE_PERIOD": "30s"])
        let id = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 3000}')"#)
        try await eventually(10, daemon.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "running"
        }
        daemon.signal(SIGINT)
        try await eventually(10, daemon.log) { daemon.log.contains("received: draining") }
        daemon.signal(SIGINT)
        // The grace period is 30 s and the job needs 3 s: exiting with 128 + SIGINT and the job still running
        // (checked below) shows the second signal stopped at once rather than draining.
        let status = await daemon.waitForExit(seconds: 60)
        XCTAssertEqual(status, 128 + SIGINT, daemon.log)
        XCTAssertTrue(daemon.log.contains("received again: stopping at once"), daemon.log)
        let still = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(still, "running", "nothing was written: the lease will bring it back")

        let rescuer = try DaemonProcess(settings, name: "twice-rescuer")
        try await eventually(20, rescuer.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
        }
        let runs = try await database.column("SELECT outcome FROM muwa.job_runs WHERE job_id = $1 ORDER BY id", [id])
        XCTAssertEqual(runs, ["lost", "succeeded"])
        await rescuer.stop()
    }
}
