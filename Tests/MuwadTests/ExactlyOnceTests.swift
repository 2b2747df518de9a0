// Exactly once: four daemon processes and 2,000 ping jobs (mixed priorities, some scheduled for later).
// Every job succeeds once and only once: muwa.job_runs holds exactly one run per job, and no two runs of
// a job overlap in time.
import Foundation
import Storage
import XCTest
import TestSupport

final class ExactlyOnceTests: XCTestCase {
    static let name = "muwa_t_exactly_once"

    func testFourDaemonsRun2000JobsExactlyOnce() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        // 2,000 jobs: priorities -3…3, every tenth scheduled 1–3 s ahead, a few with a short sleep.
        _ = try await database.execute(
            """
            INSERT INTO muwa.jobs (kind, payload, priority, run_at)
            SELECT 'ping',
                   jsonb_build_object('n', i, 'sleep_ms', CASE WHEN i % 50 = 0 THEN 20 ELSE 0 END),
                   (i % 7) - 3,
                   CASE WHEN i % 10 = 0 THEN now() + make_interval(secs => 1 + (i % 3)) ELSE now() END
            FROM generate_series(1, 2000) AS i
            """)
        let daemons = try (1...4).map { index in
            try DaemonProcess(
                settings, name: "once-\(index)", arguments: ["--concurrency", "2"],
                environment: ["MUWA_LOG_LEVEL": "warning"])
        }
        let started = Date()
        try await eventually(120, daemons.map { String($0.log.suffix(2000)) }.joined(separator: "\n---\n")) {
            try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status = 'succeeded'") == "2000"
        }
        let seconds = Date().timeIntervalSince(started)
        for daemon in daemons { await daemon.stop() }

        let notOnce = try await database.scalar(
            """
            SELECT count(*) FROM (
                SELECT j.id FROM muwa.jobs j LEFT JOIN muwa.job_runs r ON r.job_id = j.id
                GROUP BY j.id HAVING count(r.id) <> 1 OR count(*) FILTER (WHERE r.outcome = 'succeeded') <> 1
            ) AS x
            """)
        XCTAssertEqual(notOnce, "0", "every job has exactly one run, and it succeeded")
        let overlapping = try await database.scalar(
            """
            SELECT count(*) FROM muwa.job_runs a JOIN muwa.job_runs b ON a.job_id = b.job_id AND a.id < b.id
            WHERE tstzrange(a.started_at, coalesce(a.finished_at, 'infinity')) && tstzrange(b.started_at, coalesce(b.finished_at, 'infinity'))
            """)
        XCTAssertEqual(overlapping, "0")
        let early = try await database.scalar(
            "SELECT count(*) FROM muwa.job_runs r JOIN muwa.jobs j ON j.id = r.job_id WHERE r.started_at < j.run_at")
        XCTAssertEqual(early, "0", "no job started before its run_at")
        let wrongResults = try await database.scalar(
            "SELECT count(*) FROM muwa.jobs WHERE result IS DISTINCT FROM payload")
        XCTAssertEqual(wrongResults, "0")
        let workers = try await database.scalar("SELECT count(DISTINCT worker_id) FROM muwa.job_runs")
        XCTAssertEqual(workers, "4", "all four daemons took part")
        print("exactly-once: 2000 jobs on 4 daemons in \(String(format: "%.1f", seconds)) s")
    }
}
