// kill -9 in the middle of a job: another worker rescues it once the lease expires and finishes it; the
// attempt count, the error history and muwa.job_runs say what happened, and the runs never overlap.
import Foundation
import Storage
import XCTest
import TestSupport

final class CrashTests: XCTestCase {
    static let name = "muwa_t_crash"

    func testKill9MidJobIsRescuedAndFinishedByAnotherWorker() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let first = try DaemonProcess(settings, name: "crash-a")
        let second = try DaemonProcess(settings, name: "crash-b")
        let id = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 2500}')"#)
        try await eventually(10, first.log + second.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "running"
        }
        try await Task.sleep(for: .milliseconds(500))
        let holder = try await database.scalar("SELECT worker_id FROM muwa.jobs WHERE id = $1", [id]) ?? ""
        let (victim, survivor) = holder.contains(":\(first.pid):") ? (first, second) : (second, first)
        XCTAssertTrue(holder.contains(":\(victim.pid):"), holder)
        victim.signal(SIGKILL)
        let killedStatus = await victim.waitForExit(seconds: 5)
        XCTAssertEqual(killedStatus, 128 + SIGKILL)

        try await eventually(20, survivor.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
        }
        let row = try await database.firstRow(
            "SELECT attempt, worker_id, jsonb_array_length(errors) AS n, errors->0->>'message' AS message, errors->0->>'worker' AS lost FROM muwa.jobs WHERE id = $1",
            [id])
        XCTAssertEqual(try row.int("attempt"), 2)
        XCTAssertTrue(try row.string("worker_id").contains(":\(survivor.pid):"))
        XCTAssertEqual(try row.int("n"), 1)
        let message = try row.string("message")
        XCTAssertTrue(message.contains("lease expired"), message)
        XCTAssertEqual(try row.string("lost"), holder)
        let runs = try await database.column(
            "SELECT outcome || ' ' || attempt FROM muwa.job_runs WHERE job_id = $1 ORDER BY id", [id])
        XCTAssertEqual(runs, ["lost 1", "succeeded 2"])
        let overlaps = try await database.scalar(
            """
            SELECT count(*) FROM muwa.job_runs a JOIN muwa.job_runs b ON a.job_id = b.job_id AND a.id < b.id
            WHERE tstzrange(a.started_at, a.finished_at) && tstzrange(b.started_at, b.finished_at)
            """)
        XCTAssertEqual(overlaps, "0")
        XCTAssertTrue(survivor.log.contains("rescued from worker \(holder)"), survivor.log)
        // The dead worker is marked lost once it has been silent long enough.
        try await eventually(15) {
            try await database.scalar("SELECT state FROM muwa.workers WHERE id = $1", [holder]) == "lost"
        }
        await survivor.stop()
    }
}
