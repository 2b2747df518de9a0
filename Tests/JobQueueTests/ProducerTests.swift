// The producer, runner, lease keeper and completer together, in-process against a real PostgreSQL:
// concurrency limits, retries, cancellation with partial results, throttled progress, time limits,
// heartbeats outliving the lease, and a lost lease stopping the executor without further writes.
import Foundation
import JobQueue
import Storage
import XCTest
import TestSupport

final class ProducerTests: XCTestCase {
    static let name = "muwa_t_producer"

    func testRunsEveryJobOnceWithinTheConcurrencyLimit() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let tracker = ConcurrencyTracker()
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{\"ms\": 50}') FROM generate_series(1, 12)")
        try await withProducer(
            database, configuration: testConfiguration(kinds: ["ping"], concurrency: 3),
            executors: [SleepExecutor(tracker: tracker)]
        ) {
            try await waitUntil {
                try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status = 'succeeded'") == "12"
            }
        }
        XCTAssertEqual(tracker.peak, 3)
        XCTAssertEqual(tracker.started, 12)
        let outputRows = try await database.scalar("SELECT count(*) FROM muwa.job_outputs")
        XCTAssertEqual(outputRows, "24")
        let succeededRuns = try await database.scalar("SELECT count(*) FROM muwa.job_runs WHERE outcome = 'succeeded'")
        XCTAssertEqual(succeededRuns, "12")
    }

    func testRetryableFailuresBackOffAndThenSucceed() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{\"fail_until\": 2}')")
        try await withProducer(
            database, configuration: testConfiguration(kinds: ["ping"]),
            executors: [SleepExecutor(tracker: ConcurrencyTracker())]
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
            }
        }
        let row = try await firstRow(
            database,
            "SELECT attempt, jsonb_array_length(errors) AS failures, errors->1->>'message' AS last FROM muwa.jobs WHERE id = $1",
            [id])
        XCTAssertEqual(try row.int("attempt"), 3)
        XCTAssertEqual(try row.int("failures"), 2)
        XCTAssertEqual(try row.string("last"), "planned failure on attempt 2")
        // Backoff: 0.2 s after attempt 1, 0.4 s after attempt 2 (no jitter in tests).
        let gaps = try await database.execute(
            """
            SELECT extract(epoch FROM started_at - lag(finished_at) OVER (ORDER BY id))::float8 AS gap
            FROM muwa.job_runs WHERE job_id = $1 ORDER BY id
            """, [id])
        let measured = try gaps.rows.dropFirst().map { try $0.double("gap") }
        XCTAssertEqual(measured.count, 2)
        XCTAssertGreaterThanOrEqual(measured[0], 0.19)
        XCTAssertGreaterThanOrEqual(measured[1], 0.39)
    }

    func testCancelStopsARunningJobAndKeepsItsPartialResult() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 60000}')")
        var configuration = testConfiguration(kinds: ["ping"])
        // The NOTIFY path, not the heartbeat, must deliver the cancel: the first heartbeat would come after 120 s,
        // so a cancel seen within the 60 s deadline below came through the notification (no time bound needed).
        configuration.heartbeatSeconds = 120
        configuration.leaseSeconds = 240
        try await withProducer(
            database, configuration: configuration, executors: [SleepExecutor(tracker: ConcurrencyTracker())],
            listen: true
        ) {
            try await waitUntil {
                try await database.scalar("SELECT progress > 0 FROM muwa.jobs WHERE id = $1", [id]) == "t"
            }
            let requested = try await database.scalar("SELECT muwa.cancel($1::bigint)", [id])
            XCTAssertEqual(requested, "cancel_requested")
            try await waitUntil(seconds: 60) {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "cancelled"
            }
        }
        let row = try await firstRow(
            database,
            "SELECT result, (SELECT count(*) FROM muwa.job_outputs WHERE job_id = $1) AS outputs FROM muwa.jobs WHERE id = $1",
            [id])
        let slept = try XCTUnwrap(try row.json("result")?["slept_ms"]?.doubleValue)
        XCTAssertGreaterThan(slept, 100, "the partial result survives")
        XCTAssertEqual(try row.int("outputs"), 1)
        let outcome = try await database.scalar("SELECT outcome FROM muwa.job_runs WHERE job_id = $1", [id])
        XCTAssertEqual(outcome, "cancelled")
    }

    func testProgressIsWrittenAtMostOncePerInterval() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        try await database.withConnection {
            try $0.executeScript(
                """
                CREATE TABLE progress_writes (at timestamptz NOT NULL DEFAULT clock_timestamp(), progress real);
                CREATE FUNCTION count_progress() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO progress_writes (progress) VALUES (NEW.progress); RETURN NULL; END $$;
                CREATE TRIGGER count_progress AFTER UPDATE OF progress ON muwa.jobs
                    FOR EACH ROW WHEN (NEW.status = 'running' AND NEW.progress IS DISTINCT FROM OLD.progress) EXECUTE FUNCTION count_progress();
                """)
        }
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 1500}')")
        var configuration = testConfiguration(kinds: ["ping"])
        configuration.progressIntervalSeconds = 0.5
        try await withProducer(
            database, configuration: configuration, executors: [SleepExecutor(tracker: ConcurrencyTracker())]
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
            }
        }
        // ~150 progress reports; at most one write per 0.5 s (+1 for timer phase) of however long the job ran
        // (a loaded machine may stretch the 1.5 s).
        let writes = try await database.execute(
            "SELECT progress, extract(epoch FROM at - lag(at) OVER (ORDER BY at))::float8 AS gap FROM progress_writes ORDER BY at"
        )
        let ranText = try await database.scalar(
            "SELECT extract(epoch FROM finished_at - started_at)::float8 FROM muwa.jobs WHERE id = $1", [id])
        let ran = try XCTUnwrap(ranText.flatMap(Double.init), "job timestamps")
        XCTAssertGreaterThanOrEqual(writes.rows.count, 2)
        XCTAssertLessThanOrEqual(writes.rows.count, Int(ran / 0.5) + 2)
        for row in writes.rows.dropFirst() {
            XCTAssertGreaterThanOrEqual(try row.double("gap"), 0.45)
        }
    }

    func testTimeLimitFailsTheJobWithoutRetrying() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let id = try await database.scalar(
            "SELECT muwa.enqueue('ping', '{\"ms\": 60000}', time_limit => interval '400 milliseconds')")
        try await withProducer(
            database, configuration: testConfiguration(kinds: ["ping"]),
            executors: [SleepExecutor(tracker: ConcurrencyTracker())]
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "failed"
            }
        }
        let message = try await database.scalar("SELECT errors->0->>'message' FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(message, "the job exceeded its time limit of 400 ms")
        let attempts = try await database.scalar("SELECT attempt FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(attempts, "1")
    }

    func testHeartbeatsKeepALongJobAliveWhileRescuersRun() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 2500}')")
        // Lease 1 s, renewed every 0.3 s; the rescuer runs every 0.2 s (its server-uptime guard is the lease).
        try await withProducer(
            database, configuration: testConfiguration(kinds: ["ping"], lease: 1, heartbeat: 0.3),
            executors: [SleepExecutor(tracker: ConcurrencyTracker())], rescue: true
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
            }
        }
        let runs = try await database.scalar(
            "SELECT string_agg(outcome, ',') FROM muwa.job_runs WHERE job_id = $1", [id])
        XCTAssertEqual(runs, "succeeded")
    }

    func testALostLeaseStopsTheExecutorAndNothingMoreIsWritten() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 60000}')")
        let tracker = ConcurrencyTracker()
        try await withProducer(
            database, configuration: testConfiguration(kinds: ["ping"], concurrency: 1),
            executors: [SleepExecutor(tracker: tracker)]
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "running"
            }
            // Another worker takes the job over (as the rescuer + a claim would).
            _ = try await database.execute(
                "UPDATE muwa.jobs SET worker_id = 'thief', attempt = attempt + 1 WHERE id = $1", [id])
            try await waitUntil(seconds: 5) { tracker.started == 1 && tracker.running == 0 }
            try await Task.sleep(for: .milliseconds(500))
        }
        let row = try await firstRow(
            database,
            "SELECT status, worker_id, result IS NULL AS no_result, jsonb_array_length(errors) AS errors FROM muwa.jobs WHERE id = $1",
            [id])
        XCTAssertEqual(try row.string("status"), "running", "the thief's claim stands")
        XCTAssertEqual(try row.string("worker_id"), "thief")
        XCTAssertTrue(try row.bool("no_result"))
        XCTAssertEqual(try row.int("errors"), 0)
        let open = try await database.scalar(
            "SELECT count(*) FROM muwa.job_runs WHERE job_id = $1 AND finished_at IS NULL", [id])
        XCTAssertEqual(open, "1", "our run was not closed by us either: we wrote nothing")
    }
}
