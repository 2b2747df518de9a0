// The job-lifecycle queries: claim order and filters, guarded writes, failure/retry bookkeeping, release,
// rescue of expired leases, and claim speed with many finished rows.
import Foundation
import Storage
import XCTest
import TestSupport

final class JobStoreTests: XCTestCase {
    static let name = "muwa_t_jobstore"

    func testClaimOrderAndFilters() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        _ = try await database.execute(
            """
            SELECT muwa.enqueue('ping', '{"n": 1}', priority => 5);
            """)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{\"n\": 2}', priority => -1)")
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{\"n\": 3}', priority => -1)")
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{\"n\": 4}', run_at => now() + interval '1 hour')")
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{\"n\": 5}', queue => 'other')")
        _ = try await database.execute("SELECT muwa.enqueue('generate', '{\"n\": 6}')")
        let claimed = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 10, workerID: "w1", leaseSeconds: 30)
        XCTAssertEqual(
            claimed.map { $0.payload?["n"] }, [2, 3, 1],
            "priority, then run_at, then id; no future, other queue or kind")
        XCTAssertTrue(claimed.allSatisfy { $0.attempt == 1 && $0.lease.workerID == "w1" && $0.runID > 0 })
        let second = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 10, workerID: "w2", leaseSeconds: 30)
        XCTAssertEqual(second.count, 0)
        let other = try await store.claim(
            queues: ["other"], kinds: ["ping", "generate"], limit: 10, workerID: "w2", leaseSeconds: 30)
        XCTAssertEqual(other.map { $0.payload?["n"] }, [5])
    }

    func testEveryWriteIsGuardedByTheLease() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}')")
        let raw1 = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w1", leaseSeconds: 30
        ).first
        let job = try XCTUnwrap(raw1)
        let stranger = JobLease(jobID: job.id, workerID: "w2", attempt: job.attempt)
        let stale = JobLease(jobID: job.id, workerID: "w1", attempt: job.attempt + 1)
        let value1 = try await store.heartbeat(stranger, leaseSeconds: 30)
        XCTAssertEqual(value1, .lost)
        let value2 = try await store.heartbeat(stale, leaseSeconds: 30)
        XCTAssertEqual(value2, .lost)
        let value3 = try await store.finish(stranger, status: .succeeded, result: nil, outputs: [])
        XCTAssertFalse(value3)
        let value4 = try await store.fail(stranger, message: "x", retryable: true, retryDelaySeconds: 0)
        XCTAssertNil(value4)
        let value5 = try await store.release(stranger, checkpoint: nil, reason: "x")
        XCTAssertNil(value5)
        let value6 = try await store.heartbeat(job.lease, leaseSeconds: 30, progress: 0.5, detail: ["step": 3])
        XCTAssertEqual(value6, .renewed(cancelRequested: false))
        let value7 = try await store.finish(job.lease, status: .succeeded, result: ["ok": true], outputs: ["a", "b"])
        XCTAssertTrue(value7)
        let value8 = try await store.finish(job.lease, status: .succeeded, result: nil, outputs: [])
        XCTAssertFalse(value8, "only once")
        let value9 = try await store.heartbeat(job.lease, leaseSeconds: 30)
        XCTAssertEqual(value9, .lost)
        let raw2 = try await database.execute(
            "SELECT status, progress, result::text AS result, (SELECT count(*) FROM muwa.job_outputs) AS outputs FROM muwa.jobs"
        )
        let row = try XCTUnwrap(raw2.first)
        XCTAssertEqual(try row.string("status"), "succeeded")
        XCTAssertEqual(try row.double("progress"), 1)
        XCTAssertEqual(try row.int("outputs"), 2)
        let raw3 = try await database.execute("SELECT outcome, finished_at IS NOT NULL AS done FROM muwa.job_runs")
            .first
        let run = try XCTUnwrap(raw3)
        XCTAssertEqual(try run.string("outcome"), "succeeded")
    }

    func testFailuresRetryUntilAttemptsRunOutAndKeepAHistory() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}', max_attempts => 2)")
        let raw4 = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30
        ).first
        var job = try XCTUnwrap(raw4)
        let raw5 = try await store.fail(job.lease, message: "flaky", retryable: true, retryDelaySeconds: 0)
        let first = try XCTUnwrap(raw5)
        XCTAssertEqual(first.status, .queued)
        let raw6 = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30
        ).first
        job = try XCTUnwrap(raw6)
        XCTAssertEqual(job.attempt, 2)
        let raw7 = try await store.fail(job.lease, message: "flaky again", retryable: true, retryDelaySeconds: 0)
        let second = try XCTUnwrap(raw7)
        XCTAssertEqual(second.status, .failed)
        let raw8 = try await database.execute("SELECT errors FROM muwa.jobs").first?.json("errors")?.arrayValue
        let errors = try XCTUnwrap(raw8)
        XCTAssertEqual(errors.map { $0["message"] }, ["flaky", "flaky again"])
        XCTAssertEqual(errors.map { $0["attempt"] }, [1, 2])

        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}')")
        let raw9 = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30
        ).first
        job = try XCTUnwrap(raw9)
        let raw10 = try await store.fail(job.lease, message: "bad payload", retryable: false, retryDelaySeconds: 0)
        let permanent = try XCTUnwrap(raw10)
        XCTAssertEqual(permanent.status, .failed, "not retryable: fails at once")
    }

    func testReleaseDoesNotUseAnAttemptAndKeepsTheCheckpoint() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}')")
        let raw11 = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w", leaseSeconds: 30
        ).first
        let job = try XCTUnwrap(raw11)
        let value10 = try await store.release(job.lease, checkpoint: ["step": 40], reason: "shutdown")
        XCTAssertEqual(value10, .queued)
        let raw12 = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w2", leaseSeconds: 30
        ).first
        let again = try XCTUnwrap(raw12)
        XCTAssertEqual(again.attempt, 1)
        XCTAssertEqual(again.checkpoint, ["step": 40])
        let outcomes = try await database.execute("SELECT outcome FROM muwa.job_runs ORDER BY id")
        XCTAssertEqual(try outcomes.rows.map { try $0.text("outcome") }, ["released", nil])
    }

    func testRescueTakesBackExpiredLeasesOnly() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}', max_attempts => 1)")
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}')")
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}')")
        let jobs = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 3, workerID: "dead", leaseSeconds: 0.2)
        XCTAssertEqual(jobs.count, 3)
        // One job is still heartbeating.
        let value11 = try await store.heartbeat(jobs[2].lease, leaseSeconds: 60)
        XCTAssertEqual(value11, .renewed(cancelRequested: false))
        let value12 = try await store.rescueExpired(limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0).count
        XCTAssertEqual(value12, 0, "not expired yet")
        try await Task.sleep(for: .milliseconds(300))
        // Right after a server start nothing is rescued.
        let value13 = try await store.rescueExpired(limit: 10, minimumServerUptime: 1e9, retryDelaySeconds: 0).count
        XCTAssertEqual(value13, 0)
        let rescued = try await store.rescueExpired(limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0)
        XCTAssertEqual(Set(rescued.map(\.id)), [jobs[0].id, jobs[1].id])
        XCTAssertEqual(rescued.first { $0.id == jobs[0].id }?.status, .failed, "attempts used up")
        XCTAssertEqual(rescued.first { $0.id == jobs[1].id }?.status, .queued)
        XCTAssertTrue(rescued.allSatisfy { $0.lostWorker == "dead" })
        let value14 = try await store.heartbeat(jobs[1].lease, leaseSeconds: 60)
        XCTAssertEqual(value14, .lost, "the dead worker cannot come back")
        let raw13 = try await database.scalar(
            "SELECT errors->0->>'message' FROM muwa.jobs WHERE id = $1", [String(jobs[1].id)])
        let message = try XCTUnwrap(raw13)
        XCTAssertTrue(message.contains("lease expired"), message)
        let value15 = try await database.scalar("SELECT count(*) FROM muwa.job_runs WHERE outcome = 'lost'")
        XCTAssertEqual(value15, "2")
    }

    func testClaimStaysAnIndexScanWithManyFinishedRows() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        _ = try await database.execute(
            """
            INSERT INTO muwa.jobs (kind, status, attempt, finished_at, started_at)
            SELECT 'ping', 'succeeded', 1, now(), now() FROM generate_series(1, 200000)
            """)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}') FROM generate_series(1, 10)")
        _ = try await database.execute("ANALYZE muwa.jobs")
        let sql = try SQLLibrary.shared().sql(for: .jobClaim)
        let plan = try await database.execute(
            "EXPLAIN (ANALYZE, FORMAT TEXT) " + sql, ["{default}", "{ping}", "4", "w", "30"])
        let text = try plan.rows.map { try $0.string("QUERY PLAN") }.joined(separator: "\n")
        XCTAssertTrue(text.contains("jobs_claim_order"), text)
        let total = text.split(separator: "\n").last { $0.contains("Execution Time") } ?? ""
        let ms = Double(total.split(separator: " ").dropLast().last ?? "") ?? 1e9
        XCTAssertLessThan(ms, 50, "claiming among 200k finished rows took \(ms) ms")
    }
}
