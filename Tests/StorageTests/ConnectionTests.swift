// The libpq wrapper and the Database queue: parameters, NULLs, errors with SQLSTATE, UTF-8 checking,
// reconnection after the server drops us, LISTEN/NOTIFY, connection settings and JSON values; the queue's
// usage counters (wait for the connection versus run on it).
import Foundation
import Storage
import XCTest
import TestSupport

final class ConnectionTests: XCTestCase {
    static let name = "muwa_t_connection"

    func testParametersNullsAndTypes() async throws {
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "t", logger: TestDatabase.quietLogger)
        let result = try await database.execute(
            "SELECT $1::int + 1 AS n, $2::text AS t, $3::text IS NULL AS isnull, $4::jsonb AS j, true AS b",
            ["41", "it's \"quoted\"", nil, #"{"a": [1, 2.5, null]}"#])
        let row = try XCTUnwrap(result.first)
        XCTAssertEqual(try row.int("n"), 42)
        XCTAssertEqual(try row.string("t"), "it's \"quoted\"")
        XCTAssertTrue(try row.bool("isnull"))
        XCTAssertTrue(try row.bool("b"))
        XCTAssertEqual(try row.json("j"), ["a": [1, 2.5, .null]])
        XCTAssertThrowsError(try row.string("missing"))
    }

    func testServerErrorsCarrySQLStateAndAreNotTransient() async throws {
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "t", logger: TestDatabase.quietLogger)
        do {
            _ = try await database.execute("SELECT * FROM no_such_table", statement: "Broken")
            XCTFail("expected an error")
        } catch let error as StorageError {
            XCTAssertEqual(error.sqlState, "42P01")
            XCTAssertFalse(error.isTransient)
            XCTAssertTrue(error.description.contains("Broken"), error.description)
            XCTAssertTrue(error.description.contains("no_such_table"), error.description)
        }
        // The connection is still usable afterwards.
        let seven = try await database.scalar("SELECT 7")
        XCTAssertEqual(seven, "7")
    }

    func testInvalidUTF8IsReportedNotRepairedSilently() async throws {
        // A SQL_ASCII database stores bytes unchecked: the only way non-UTF-8 text reaches muwad.
        let settings = try TestDatabase.fresh(Self.name + "_ascii", encoding: "SQL_ASCII")
        let database = Database(settings: settings, label: "t", logger: TestDatabase.quietLogger)
        _ = try await database.execute(
            #"CREATE TABLE texts AS SELECT E'ok \xff\xfe'::text AS bad, 'fine'::text AS good"#)
        let raw1 = try await database.execute("SELECT bad, good FROM texts").first
        let row = try XCTUnwrap(raw1)
        XCTAssertEqual(try row.string("good"), "fine")
        XCTAssertThrowsError(try row.string("bad")) { error in
            XCTAssertTrue("\(error)".contains("not valid UTF-8 (byte 0xFF at offset 3)"), "\(error)")
        }
    }

    func testReconnectsAfterTheServerDropsTheConnection() async throws {
        let settings = try TestDatabase.fresh(Self.name)
        let database = Database(settings: settings, label: "t", logger: TestDatabase.quietLogger, initialBackoff: 0.01)
        let raw2 = try await database.scalar("SELECT pg_backend_pid()")
        let pid = try XCTUnwrap(raw2)
        let admin = Database(settings: settings, label: "admin", logger: TestDatabase.quietLogger)
        _ = try await admin.execute("SELECT pg_terminate_backend($1::int)", [pid])
        var failedOnce = false
        do {
            _ = try await database.execute("SELECT 1")
        } catch let error as StorageError {
            XCTAssertTrue(error.isTransient, "\(error)")
            failedOnce = true
        }
        XCTAssertTrue(failedOnce, "the first statement after the kill should see the broken connection")
        try await Task.sleep(for: .milliseconds(50))
        let newPID = try await database.scalar("SELECT pg_backend_pid()")
        XCTAssertNotEqual(newPID, pid)
    }

    func testUnreachableServerFailsFastAsTransient() async throws {
        let settings = ConnectionSettings(
            conninfo: "host=/nonexistent-muwa-socket-dir port=1 dbname=x connect_timeout=1")
        let database = Database(settings: settings, label: "t", logger: TestDatabase.quietLogger)
        do {
            _ = try await database.execute("SELECT 1")
            XCTFail("expected a connection error")
        } catch let error as StorageError {
            XCTAssertEqual(error.code, .connectionFailed)
            XCTAssertTrue(error.isTransient)
        }
        // Within the backoff window the next call fails at once without trying again.
        let started = Date()
        _ = try? await database.execute("SELECT 1")
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.5)
    }

    func testListenerDeliversNotifications() async throws {
        let settings = try TestDatabase.fresh(Self.name)
        let listener = NotificationListener(
            settings: settings, channels: ["muwa_test"], logger: TestDatabase.quietLogger)
        let events = EventBox()
        let thread = Thread {
            listener.run(tick: 0.05, shouldStop: { events.count >= 3 || events.stopped }) { events.append($0) }
        }
        thread.start()
        defer { events.stop() }
        let database = Database(settings: settings, label: "t", logger: TestDatabase.quietLogger)
        try await waitUntil { events.all.contains(.connected) }
        _ = try await database.execute("SELECT pg_notify('muwa_test', 'hello'), pg_notify('other', 'x')")
        _ = try await database.execute("NOTIFY muwa_test, 'again'")
        try await waitUntil { events.count >= 3 }
        let payloads = events.all.compactMap { event -> String? in
            if case .notification(let notification) = event { return notification.channel + ":" + notification.payload }
            return nil
        }
        XCTAssertEqual(payloads, ["muwa_test:hello", "muwa_test:again"])
    }

    func testConnectionSettings() {
        let conninfo = ConnectionSettings(conninfo: "host=/tmp port=5 password=secret dbname=a")
        XCTAssertEqual(conninfo.redacted, "password=*** dbname=a host=/tmp port=5")  // libpq's order
        XCTAssertEqual(conninfo.withDatabase("b").conninfo, "host=/tmp port=5 password=secret dbname=a dbname='b'")
        let url = ConnectionSettings(conninfo: "postgres://u:pw@db.example:5432/muwa?sslmode=require")
        XCTAssertEqual(url.redacted, "user=u password=*** dbname=muwa host=db.example port=5432 sslmode=require")
        XCTAssertEqual(url.withDatabase("other").conninfo, "postgres://u:pw@db.example:5432/other?sslmode=require")
        XCTAssertEqual(ConnectionSettings(conninfo: "").redacted, "(libpq defaults / PG* environment)")
    }

    func testJSONValueRoundTrip() throws {
        let value: JSONValue = ["b": [1, 2.5, "x\n\"y\"", .null, true], "a": ["nested": "é\u{1}"]]
        XCTAssertEqual(value.jsonText, #"{"a":{"nested":"é\u0001"},"b":[1,2.5,"x\n\"y\"",null,true]}"#)
        XCTAssertEqual(try JSONValue(parsing: value.jsonText), value)
        XCTAssertEqual(JSONValue.number(.nan).jsonText, "null")
        XCTAssertEqual(JSONValue.string("a\u{0}b").jsonText, "\"a\u{FFFD}b\"")
        XCTAssertThrowsError(try JSONValue(parsing: "{nope"))
    }

    func testSQLLibraryHasEveryStatement() throws {
        let library = try SQLLibrary.shared()
        XCTAssertEqual(library.mismatches().missing, [])
        XCTAssertEqual(library.mismatches().unused, [])
        XCTAssertTrue(try library.sql(for: .jobClaim).contains("FOR UPDATE SKIP LOCKED"))
        XCTAssertThrowsError(try SQLLibrary(files: [("x.sql", "-- name: A\nSELECT 1;\n-- name: A\nSELECT 2;")]))
    }
}

/// Collects listener events across threads.
final class EventBox: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ListenerEvent] = []
    private var _stopped = false

    func append(_ event: ListenerEvent) { lock.withLock { events.append(event) } }
    var all: [ListenerEvent] { lock.withLock { events } }
    var count: Int { lock.withLock { events.count } }
    func stop() { lock.withLock { _stopped = true } }
    var stopped: Bool { lock.withLock { _stopped } }
}

// Database.usage: every call counts once (failed ones too), and a call queued behind another on the one
// serialized connection shows that one's run time as its own wait, not as run time.
final class DatabaseUsageTests: XCTestCase {
    static let name = "muwa_t_usage"

    /// Set from the database queue, read from the test task.
    private final class StartMark: @unchecked Sendable {
        private let lock = NSLock()
        private var date: Date?
        func set() { lock.withLock { date = Date() } }
        var value: Date? { lock.withLock { date } }
    }

    func testACallQueuedBehindAnotherWaitsForItsRunTime() async throws {
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "commands", logger: TestDatabase.quietLogger)
        let sleepSeconds = 0.4
        let started = StartMark()
        async let first: Void = database.withConnection { connection in
            started.set()
            _ = try connection.execute("SELECT pg_sleep(\(sleepSeconds))")
        }
        try await waitUntil { started.value != nil }
        // The second call is submitted while the first holds the connection: it waits for the rest of it.
        let submitted = Date()
        let firstStart = try XCTUnwrap(started.value)
        let one = try await database.scalar("SELECT 1")
        try await first
        XCTAssertEqual(one, "1")

        let usage = database.usage
        let alreadyRunSeconds = submitted.timeIntervalSince(firstStart)
        XCTAssertEqual(usage.label, "commands")
        XCTAssertEqual(usage.calls, 2)
        XCTAssertGreaterThanOrEqual(usage.runSeconds, sleepSeconds)
        // The first call did not wait; the second waited at least what was left of the first's sleep.
        let slackSeconds = 0.02
        XCTAssertGreaterThanOrEqual(
            usage.maxWaitSeconds, sleepSeconds - alreadyRunSeconds - slackSeconds, usage.summary)
        XCTAssertGreaterThanOrEqual(usage.waitSeconds, usage.maxWaitSeconds)
        XCTAssertGreaterThan(usage.waitShare, 0)
    }

    func testEveryCallCountsFailedOnesToo() async throws {
        let database = Database(
            settings: try TestDatabase.fresh(Self.name), label: "t", logger: TestDatabase.quietLogger)
        XCTAssertEqual(
            database.usage, DatabaseUsage(label: "t", calls: 0, waitSeconds: 0, runSeconds: 0, maxWaitSeconds: 0))
        _ = try await database.execute("SELECT 1")
        _ = try? await database.execute("SELECT 1/0")
        _ = try await database.transaction { try $0.execute("SELECT 2") }
        let usage = database.usage
        XCTAssertEqual(usage.calls, 3)
        XCTAssertGreaterThan(usage.runSeconds, 0)
        XCTAssertTrue(usage.summary.hasPrefix("t: 3 calls"), usage.summary)

        // Several daemons' snapshots add up under one label; the longest wait is the largest of theirs.
        let other = DatabaseUsage(label: "t", calls: 7, waitSeconds: 1.5, runSeconds: 2, maxWaitSeconds: 0.75)
        let combined = DatabaseUsage.combined([usage, other], label: "all")
        XCTAssertEqual(combined.calls, 10)
        XCTAssertEqual(combined.waitSeconds, usage.waitSeconds + 1.5, accuracy: 1e-12)
        XCTAssertEqual(combined.runSeconds, usage.runSeconds + 2, accuracy: 1e-12)
        XCTAssertEqual(combined.maxWaitSeconds, max(usage.maxWaitSeconds, 0.75))
    }
}
