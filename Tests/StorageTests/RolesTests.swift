// Roles (migration 0006) against a real server: LOGIN roles made members of muwa_enqueuer, muwa_dashboard and
// muwa_worker connect as themselves and try what each may and may not do. The test server trusts local
// connections, so `user=NAME` is all a connection needs.
import Foundation
import Storage
import XCTest
import TestSupport

final class RolesTests: XCTestCase {
    static let name = "muwa_t_roles"

    /// LOGIN roles for the tests, created if missing (roles are cluster-wide and outlive the database).
    static let logins = [
        ("muwa_t_alice", "muwa_enqueuer"), ("muwa_t_bob", "muwa_enqueuer"), ("muwa_t_dash", "muwa_dashboard"),
        ("muwa_t_worker", "muwa_worker"),
    ]

    static func createLogins(_ database: Database) async throws {
        for (login, group) in logins { try await TestDatabase.createLogin(login, in: group, on: database) }
        // Left over by an interrupted run of the test that grants it.
        _ = try await database.execute("REVOKE muwa_t_bob FROM muwa_t_alice")
    }

    /// A connection to the same database as `login`.
    static func connect(_ database: Database, as login: String) -> Database {
        TestDatabase.connect(database, as: login)
    }

    private func expectDenied(
        _ database: Database, _ sql: String, _ parameters: [String?] = [], state: String = "42501",
        file: StaticString = #filePath, line: UInt = #line
    ) async {
        do {
            _ = try await database.execute(sql, parameters)
            XCTFail("expected \(sql) to be refused", file: file, line: line)
        } catch let error as StorageError {
            XCTAssertEqual(error.sqlState, state, "\(error)", file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    func testTheMigrationRunsTwiceOnOneServerAndTheRolesExist() async throws {
        // Two databases on one cluster: the second migration finds the roles and still succeeds.
        let first = try await TestDatabase.migrated(Self.name)
        let second = try await TestDatabase.migrated(Self.name + "_b")
        for database in [first, second] {
            let roles = try await database.scalar(
                "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'muwa\\_%' AND NOT rolcanlogin"
            )
            XCTAssertEqual(roles, "muwa_dashboard,muwa_enqueuer,muwa_worker")
        }
    }

    func testEnqueuersSeeAndManageOnlyTheirOwnJobs() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        try await Self.createLogins(database)
        let alice = Self.connect(database, as: "muwa_t_alice")
        let bob = Self.connect(database, as: "muwa_t_bob")

        let aliceJob = try unwrapped(try await alice.scalar("SELECT muwa.enqueue('ping', '{\"who\": \"alice\"}')"))
        let bobJob = try unwrapped(try await bob.scalar("SELECT muwa.enqueue('ping', '{\"who\": \"bob\"}')"))
        let plain = try unwrapped(
            try await alice.scalar(
                "INSERT INTO muwa.jobs (kind, payload, priority) VALUES ('ping', '{\"plain\": true}', 3) RETURNING id"))
        let creators = try await database.execute("SELECT id, created_by FROM muwa.jobs ORDER BY id")
        XCTAssertEqual(
            try creators.rows.map { try $0.string("created_by") }, ["muwa_t_alice", "muwa_t_bob", "muwa_t_alice"])

        // Reading: own rows only.
        let seen = try await alice.execute("SELECT id FROM muwa.jobs ORDER BY id")
        XCTAssertEqual(try seen.rows.map { String(try $0.int("id")) }, [aliceJob, plain])
        let bobSees = try await bob.scalar("SELECT count(*) FROM muwa.jobs WHERE id = $1", [aliceJob])
        XCTAssertEqual(bobSees, "0")

        // Cancel and retry: own jobs yes, others' no.
        await expectDenied(alice, "SELECT muwa.cancel($1::bigint)", [bobJob])
        await expectDenied(alice, "SELECT muwa.retry($1::bigint)", [bobJob])
        let bobStatus = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [bobJob])
        XCTAssertEqual(bobStatus, "queued", "untouched")
        let cancelled = try await alice.scalar("SELECT muwa.cancel($1::bigint)", [aliceJob])
        XCTAssertEqual(cancelled, "cancelled")
        let retried = try await alice.scalar("SELECT muwa.retry($1::bigint)", [aliceJob])
        XCTAssertEqual(retried, "t")
        // A temporary table cannot stand in for a catalog inside the SECURITY DEFINER functions or the policy
        // (pg_temp is searched last there, and the catalogs are schema-qualified).
        do {
            try await alice.withConnection { connection in
                _ = try connection.execute("CREATE TEMP TABLE pg_roles (rolname name, oid oid)")
                _ = try connection.execute(
                    "INSERT INTO pg_roles SELECT 'muwa_t_bob', oid FROM pg_catalog.pg_roles WHERE rolname = 'muwa_t_alice'"
                )
                let visible = try connection.execute("SELECT count(*) AS n FROM muwa.jobs WHERE id = $1", [bobJob])
                XCTAssertEqual(try visible.first?.int("n"), 0, "the policy is not fooled")
                _ = try connection.execute("SELECT muwa.cancel($1::bigint)", [bobJob])
            }
            XCTFail("a temporary pg_roles let alice cancel bob's job")
        } catch let error as StorageError {
            XCTAssertEqual(error.sqlState, "42501", "\(error)")
        }
        // Unless granted: a member of bob's role manages bob's jobs.
        _ = try await database.execute("GRANT muwa_t_bob TO muwa_t_alice")
        let granted = try await alice.scalar("SELECT muwa.cancel($1::bigint)", [bobJob])
        XCTAssertEqual(granted, "cancelled")
        _ = try await database.execute("REVOKE muwa_t_bob FROM muwa_t_alice")

        // A plain INSERT cannot choose what only the queue may set, and no UPDATE / DELETE at all.
        for column in [
            "status", "attempt", "worker_id", "lease_expires_at", "result", "checkpoint", "errors", "cancel_requested",
            "progress", "created_by", "started_at", "finished_at",
        ] {
            let value: String
            switch column {
            case "status": value = "'succeeded'"
            case "attempt": value = "5"
            case "lease_expires_at", "started_at", "finished_at": value = "now()"
            case "result", "checkpoint": value = #"'{"samples_file": "/etc/passwd"}'"#
            case "errors": value = "'[]'"
            case "cancel_requested": value = "true"
            case "progress": value = "0.5"
            default: value = "'muwa_t_bob'"
            }
            await expectDenied(
                alice, "INSERT INTO muwa.jobs (kind, payload, \(column)) VALUES ('ping', '{}', \(value))")
        }
        await expectDenied(alice, "UPDATE muwa.jobs SET checkpoint = '{}' WHERE id = $1", [aliceJob])
        await expectDenied(alice, "UPDATE muwa.jobs SET cancel_requested = true WHERE id = $1", [bobJob])
        await expectDenied(alice, "DELETE FROM muwa.jobs WHERE id = $1", [aliceJob])
        await expectDenied(alice, "SELECT * FROM muwa.generations")
        await expectDenied(alice, "SELECT * FROM muwa.job_runs")
    }

    func testTheDashboardReadsViewsNotPayloads() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        try await Self.createLogins(database)
        _ = try await database.execute(#"SELECT muwa.enqueue('ping', '{"secret": "prompt text"}')"#)
        let dashboard = Self.connect(database, as: "muwa_t_dash")
        for view in [
            "queue_depth", "throughput_hourly", "attempts_hourly", "running_jobs", "recent_failures", "workers",
            "train_log", "eval_results", "model_comparison", "eval_samples", "generations", "adapters",
            "adapter_versions",
        ] {
            _ = try await dashboard.execute("SELECT * FROM muwa.\(view)")
        }
        let status = try await dashboard.scalar("SELECT status FROM muwa.jobs")
        XCTAssertEqual(status, "queued", "status columns are readable")
        await expectDenied(dashboard, "SELECT payload FROM muwa.jobs")
        await expectDenied(dashboard, "SELECT checkpoint FROM muwa.jobs")
        await expectDenied(dashboard, "SELECT muwa.enqueue('ping', '{}')")
        await expectDenied(dashboard, "SELECT muwa.cancel(1)")
        await expectDenied(dashboard, "INSERT INTO muwa.jobs (kind) VALUES ('ping')")
        await expectDenied(dashboard, "UPDATE muwa.jobs SET cancel_requested = true")
        // "Unless granted".
        _ = try await database.execute("GRANT SELECT (payload) ON muwa.jobs TO muwa_t_dash")
        let payload = try await dashboard.scalar("SELECT payload ->> 'secret' FROM muwa.jobs")
        XCTAssertEqual(payload, "prompt text")
        _ = try await database.execute("REVOKE SELECT (payload) ON muwa.jobs FROM muwa_t_dash")
    }

    func testTheWorkerRoleRunsTheQueue() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        try await Self.createLogins(database)
        let alice = Self.connect(database, as: "muwa_t_alice")
        _ = try await alice.execute("SELECT muwa.enqueue('ping', '{}')")
        let worker = Self.connect(database, as: "muwa_t_worker")
        let store = JobStore(database: worker)
        let claimed = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30)
        let job = try XCTUnwrap(claimed.first, "the worker sees every job")
        let value = try await store.heartbeat(job.lease, leaseSeconds: 30, progress: 0.5)
        XCTAssertEqual(value, .renewed(cancelRequested: false))
        let finished = try await store.finish(job.lease, status: .succeeded, result: ["ok": true], outputs: ["x"])
        XCTAssertTrue(finished)
        _ = try await store.rescueExpired(limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0)
        let migrator = Migrator(
            database: worker, migrations: try MigrationSet.load(directory: TestDatabase.migrationsDirectory),
            logger: TestDatabase.quietLogger)
        try await migrator.requireCurrent()
        // Alice sees the result of her job.
        let result = try await alice.scalar("SELECT result ->> 'ok' FROM muwa.jobs")
        XCTAssertEqual(result, "true")
        let outputs = try await alice.scalar("SELECT count(*) FROM muwa.job_outputs")
        XCTAssertEqual(outputs, "1")
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
