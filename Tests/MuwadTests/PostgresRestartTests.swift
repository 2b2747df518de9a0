// A restart of PostgreSQL in the middle of a run of 200 jobs: the daemons reconnect with backoff, keep the
// jobs they are running, report results once the server is back, never exit, and every job succeeds
// exactly once. Restarts the test server through scripts/pg-private.sh (MUWA_TEST_PG_DIR/PORT).
import Foundation
import Storage
import XCTest
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

final class PostgresRestartTests: XCTestCase {
    static let name = "muwa_t_pg_restart"

    /// Runs scripts/pg-private.sh with posix_spawn and waitpid (Foundation's Process can miss the exit of
    /// a child whose grandchild, the server, lives on).
    private func pgPrivate(_ arguments: [String]) throws {
        let script = Harness.repositoryRoot.appendingPathComponent("scripts/pg-private.sh").path
        let argv = ([script] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        guard posix_spawn(&pid, script, &actions, nil, argv, environ) == 0 else {
            throw HarnessError(description: "cannot run \(script)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            throw HarnessError(description: "pg-private.sh \(arguments) exited with status \(status)")
        }
    }

    func testAllJobsSucceedAcrossAPostgreSQLRestart() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment["MUWA_TEST_PG_DIR"], let port = environment["MUWA_TEST_PG_PORT"] else {
            if environment["CI"] == "true" {
                throw HarnessError(description: "MUWA_TEST_PG_DIR / MUWA_TEST_PG_PORT are not set under CI=true")
            }
            throw XCTSkip("MUWA_TEST_PG_DIR and MUWA_TEST_PG_PORT are needed to restart the test server")
        }
        _ = try await database.execute(
            "SELECT muwa.enqueue('ping', jsonb_build_object('n', i, 'sleep_ms', 80)) FROM generate_series(1, 200) AS i")
        let extra = ["MUWA_LEASE": "3s", "MUWA_HEARTBEAT": "500ms"]
        let daemons = try (1...2).map { index in
            try DaemonProcess(
                settings, name: "restart-\(index)", arguments: ["--concurrency", "2"], environment: extra)
        }
        try await eventually(30) {
            Int(try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status = 'succeeded'") ?? "0") ?? 0
                >= 40
        }
        try pgPrivate(["stop", directory])
        defer { try? pgPrivate(["start", directory, port]) }
        try await Task.sleep(for: .seconds(2))
        XCTAssertTrue(daemons.allSatisfy(\.isRunning), "no daemon exits while the server is down")
        try pgPrivate(["start", directory, port])

        try await eventually(60, daemons.map { String($0.log.suffix(3000)) }.joined(separator: "\n---\n")) {
            (try? await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status = 'succeeded'")) == "200"
        }
        XCTAssertTrue(daemons.allSatisfy(\.isRunning))
        let notOnce = try await database.scalar(
            """
            SELECT count(*) FROM (SELECT job_id FROM muwa.job_runs GROUP BY job_id
                                  HAVING count(*) FILTER (WHERE outcome = 'succeeded') <> 1) AS x
            """)
        XCTAssertEqual(notOnce, "0")
        let overlapping = try await database.scalar(
            """
            SELECT count(*) FROM muwa.job_runs a JOIN muwa.job_runs b ON a.job_id = b.job_id AND a.id < b.id
            WHERE tstzrange(a.started_at, coalesce(a.finished_at, 'infinity')) && tstzrange(b.started_at, coalesce(b.finished_at, 'infinity'))
            """)
        XCTAssertEqual(overlapping, "0")
        let log = daemons.map(\.log).joined()
        XCTAssertTrue(
            log.contains("database connection lost") || log.contains("cannot claim jobs"), log.suffix(3000).description)
        XCTAssertTrue(log.contains("re-established"), String(log.suffix(3000)))
        for daemon in daemons { await daemon.stop() }
    }
}
