// The SQL API (muwa.enqueue / cancel / retry, plain INSERT, NOTIFY trigger, views) against a real server.
import Foundation
import Storage
import XCTest
import TestSupport

final class SQLAPITests: XCTestCase {
    static let name = "muwa_t_sqlapi"

    private func expectError(
        _ database: Database, _ sql: String, contains fragments: [String], file: StaticString = #filePath,
        line: UInt = #line
    ) async {
        do {
            _ = try await database.execute(sql)
            XCTFail("expected an error from \(sql)", file: file, line: line)
        } catch {
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "\(error) lacks \(fragment)", file: file, line: line)
            }
        }
    }

    func testEnqueueRejectsUnknownKindsAndNonObjectPayloads() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        await expectError(
            database, "SELECT muwa.enqueue('pong', '{}')",
            contains: ["unknown job kind 'pong'", "known kinds: evaluate, finetune, generate, ping"])
        await expectError(
            database, "SELECT muwa.enqueue('ping', '[1,2]')", contains: ["payload must be a JSON object, got array"])
        await expectError(
            database, "SELECT muwa.enqueue('ping', NULL)", contains: ["payload must be a JSON object, got NULL"])
        await expectError(database, "SELECT muwa.enqueue('ping', '{}', max_attempts => 0)", contains: ["max_attempts"])
        // Plain INSERT works, and the same rules hold through constraints.
        let id = try await database.scalar(
            "INSERT INTO muwa.jobs (kind, payload) VALUES ('ping', '{\"a\": 1}') RETURNING id")
        XCTAssertNotNil(id)
        await expectError(database, "INSERT INTO muwa.jobs (kind) VALUES ('pong')", contains: ["jobs_kind_fkey"])
        await expectError(
            database, "INSERT INTO muwa.jobs (kind, payload) VALUES ('ping', '3')", contains: ["jobs_payload_is_object"]
        )
        // Text PostgreSQL cannot store at all is rejected at enqueue time with PostgreSQL's message.
        await expectError(database, #"SELECT muwa.enqueue('ping', '{"p": "\u0000"}')"#, contains: ["\\u0000"])
    }

    func testUniqueKeyAllowsOneLiveJob() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let first = try await database.scalar("SELECT muwa.enqueue('ping', '{}', unique_key => 'daily')")
        let again = try await database.scalar("SELECT muwa.enqueue('ping', '{\"x\": 2}', unique_key => 'daily')")
        XCTAssertEqual(first, again, "a live duplicate returns the existing id")
        _ = try await database.execute("SELECT muwa.cancel($1::bigint)", [first])
        let third = try await database.scalar("SELECT muwa.enqueue('ping', '{}', unique_key => 'daily')")
        XCTAssertNotEqual(third, first, "a finished job frees its key")
    }

    func testCancelAndRetry() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let raw1 = try await database.scalar("SELECT muwa.enqueue('ping', '{}', max_attempts => 1)")
        let id = try XCTUnwrap(raw1)
        let first = try await database.scalar("SELECT muwa.cancel($1::bigint)", [id])
        XCTAssertEqual(first, "cancelled")
        let again = try await database.scalar("SELECT muwa.cancel($1::bigint)", [id])
        XCTAssertEqual(again, "cancelled", "cancelling twice answers the final status")
        let value3 = try await database.scalar("SELECT muwa.retry($1::bigint)", [id])
        XCTAssertEqual(value3, "t")
        let value4 = try await database.scalar("SELECT muwa.retry($1::bigint)", [id])
        XCTAssertEqual(value4, "f", "already queued")
        let value5 = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(value5, "queued")
        // Running: the cancel is a request the worker acts on.
        let store = JobStore(database: database)
        let claimed = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30)
        XCTAssertEqual(claimed.map(\.id), [Int64(id)])
        let value6 = try await database.scalar("SELECT muwa.cancel($1::bigint)", [id])
        XCTAssertEqual(value6, "cancel_requested")
        let value7 = try await store.heartbeat(claimed[0].lease, leaseSeconds: 30)
        XCTAssertEqual(value7, .renewed(cancelRequested: true))
        await expectError(database, "SELECT muwa.cancel(999999)", contains: ["no job with id 999999"])
        await expectError(database, "SELECT muwa.retry(999999)", contains: ["no job with id 999999"])
    }

    func testTriggerNotifiesOnInsertRetryAndCancel() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let listener = NotificationListener(
            settings: database.settings, channels: ["muwa_jobs"], logger: TestDatabase.quietLogger)
        let events = EventBox()
        let thread = Thread { listener.run(tick: 0.05, shouldStop: { events.stopped }) { events.append($0) } }
        thread.start()
        defer { events.stop() }
        try await waitUntil { events.all.contains(.connected) }
        let store = JobStore(database: database)
        let raw2 = try await database.scalar("SELECT muwa.enqueue('ping', '{}', queue => 'q1')")
        let id = try XCTUnwrap(raw2)
        _ = try await database.scalar("SELECT muwa.enqueue('ping', '{}', run_at => now() + interval '1 hour')")
        _ = try await store.claim(queues: ["q1"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30)
        _ = try await database.execute("SELECT muwa.cancel($1::bigint)", [id])
        try await waitUntil { events.count >= 3 }
        let payloads = events.all.compactMap { event -> String? in
            if case .notification(let notification) = event { return notification.payload }
            return nil
        }
        XCTAssertEqual(payloads, ["queued q1 ping", "cancel \(id)"], "future jobs do not wake anyone")
    }

    func testViewsAnswer() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}') FROM generate_series(1, 3)")
        let depth = try await database.execute("SELECT kind, status, jobs FROM muwa.queue_depth")
        XCTAssertEqual(try depth.first?.int("jobs"), 3)
        for view in ["throughput_hourly", "attempts_hourly", "running_jobs", "recent_failures"] {
            _ = try await database.execute("SELECT * FROM muwa.\(view)")
        }
    }
}
