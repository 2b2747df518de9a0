// Issue 9 on the queue side: a forged 'cancel <id>' notification (anyone may NOTIFY) does not stop a running
// job while muwa.cancel still does, promptly; the worker's default time limit stops a job that has none of its
// own, and a job's own limit wins over it.
import Foundation
import JobQueue
import Storage
import XCTest
import TestSupport

final class HardeningTests: XCTestCase {
    static let name = "muwa_t_hardening"

    /// A LOGIN role in muwa_dashboard: it may read the views and nothing else, but may NOTIFY.
    func dashboardConnection(_ database: Database) async throws -> Database {
        try await TestDatabase.createLogin("muwa_t_notifier", in: "muwa_dashboard", on: database)
        return TestDatabase.connect(database, as: "muwa_t_notifier")
    }

    func testAForgedCancelNotificationDoesNotStopARunningJob() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let dashboard = try await dashboardConnection(database)
        let id = try unwrapped(try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 60000}')"))
        var configuration = testConfiguration(kinds: ["ping"])
        configuration.heartbeatSeconds = 10  // only the notification path could deliver a cancel quickly
        configuration.leaseSeconds = 30
        try await withProducer(
            database, configuration: configuration, executors: [SleepExecutor(tracker: ConcurrencyTracker())],
            listen: true
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "running"
            }
            // The dashboard role cannot update muwa.jobs, but it can send the notification the trigger would.
            do {
                _ = try await dashboard.execute("UPDATE muwa.jobs SET cancel_requested = true WHERE id = $1", [id])
                XCTFail("the dashboard role must not be able to update muwa.jobs")
            } catch let error as StorageError {
                XCTAssertEqual(error.sqlState, "42501", "\(error)")
            }
            _ = try await dashboard.execute("SELECT pg_notify('muwa_jobs', 'cancel ' || $1)", [id])
            _ = try await dashboard.execute("NOTIFY muwa_jobs, 'cancel \(id)'")
            // The genuine path takes well under a second (testCancelStopsARunningJob…); give the forged one two.
            let forgedAt = Date()
            while Date().timeIntervalSince(forgedAt) < 2 {
                let status = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
                XCTAssertEqual(status, "running", "a forged notification stopped the job")
                if status != "running" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let requested = try await database.scalar("SELECT muwa.cancel($1::bigint)", [id])
            XCTAssertEqual(requested, "cancel_requested")
            let asked = Date()
            try await waitUntil(seconds: 3) {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "cancelled"
            }
            XCTAssertLessThan(Date().timeIntervalSince(asked), 2, "muwa.cancel still stops it promptly")
        }
    }

    func testTheDefaultTimeLimitStopsJobsWithoutTheirOwn() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let unlimited = try unwrapped(try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 60000}')"))
        let ownLimit = try unwrapped(
            try await database.scalar(
                "SELECT muwa.enqueue('ping', '{\"ms\": 1500}', time_limit => interval '1 minute')"))
        var configuration = testConfiguration(kinds: ["ping"], concurrency: 2)
        configuration.defaultTimeLimitSeconds = 0.5
        try await withProducer(
            database, configuration: configuration, executors: [SleepExecutor(tracker: ConcurrencyTracker())]
        ) {
            try await waitUntil {
                let statuses = try await database.execute(
                    "SELECT status FROM muwa.jobs WHERE id IN ($1, $2) AND status IN ('failed', 'succeeded')",
                    [unlimited, ownLimit])
                return statuses.rows.count == 2
            }
        }
        let row = try await firstRow(
            database, "SELECT status, attempt, errors->0->>'message' AS message FROM muwa.jobs WHERE id = $1",
            [unlimited])
        XCTAssertEqual(try row.string("status"), "failed")
        XCTAssertEqual(try row.int("attempt"), 1, "a time limit is not retried")
        let message = try row.string("message")
        XCTAssertTrue(
            message.contains("default time limit of 500 ms") && message.contains("MUWA_DEFAULT_TIME_LIMIT"), message)
        let own = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [ownLimit])
        XCTAssertEqual(own, "succeeded", "the job's own time_limit replaces the default")
    }

    func testTheDefaultsAreGenerous() {
        let configuration = QueueConfiguration(workerID: "w", kinds: ["ping"], stateDirectory: "/tmp")
        XCTAssertEqual(configuration.defaultTimeLimitSeconds, 7 * 86400)
        XCTAssertEqual(configuration.maxLostRuns, 2)
        var zero = configuration
        zero.defaultTimeLimitSeconds = 0
        XCTAssertFalse(zero.problems().isEmpty)
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
