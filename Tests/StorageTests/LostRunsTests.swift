// A job whose worker stopped twice while running it (the daemon crashed or was killed: the lease expired and
// the run was recorded 'lost') fails permanently on the second rescue, whatever its max_attempts says.
import Foundation
import Storage
import XCTest
import TestSupport

final class LostRunsTests: XCTestCase {
    static let name = "muwa_t_lostruns"

    /// Claims the job as `worker` and lets its lease run out at once (as a kill -9 would, minus the wait).
    private func claimAndDie(_ store: JobStore, _ database: Database, worker: String) async throws -> ClaimedJob {
        let claimed = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: worker, leaseSeconds: 60)
        let job = try XCTUnwrap(claimed.first)
        _ = try await database.execute(
            "UPDATE muwa.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [String(job.id)])
        return job
    }

    func testASecondLostRunFailsTheJobForGood() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        let id = try unwrapped(try await database.scalar("SELECT muwa.enqueue('ping', '{}', max_attempts => 100)"))

        _ = try await claimAndDie(store, database, worker: "crashed-1")
        let first = try await store.rescueExpired(
            limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0, maxLostRuns: 2)
        XCTAssertEqual(first.map(\.status), [.queued], "one lost run: retried")

        _ = try await claimAndDie(store, database, worker: "crashed-2")
        let second = try await store.rescueExpired(
            limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0, maxLostRuns: 2)
        XCTAssertEqual(second.map(\.status), [.failed], "two lost runs: failed, though 98 attempts are left")

        let row = try await database.execute(
            "SELECT status, attempt, finished_at IS NOT NULL AS done, errors->1->>'message' AS message FROM muwa.jobs WHERE id = $1",
            [id])
        let job = try XCTUnwrap(row.first)
        XCTAssertEqual(try job.string("status"), "failed")
        XCTAssertEqual(try job.int("attempt"), 2)
        XCTAssertTrue(try job.bool("done"))
        let message = try job.string("message")
        XCTAssertTrue(message.contains("the worker running this job stopped twice"), message)
        XCTAssertTrue(message.contains("failed permanently to protect the queue"), message)
        let runs = try await database.scalar(
            "SELECT string_agg(outcome, ',' ORDER BY id) FROM muwa.job_runs WHERE job_id = $1", [id])
        XCTAssertEqual(runs, "lost,lost")
        let claimable = try await store.claim(
            queues: ["default"], kinds: ["ping"], limit: 1, workerID: "w3", leaseSeconds: 60)
        XCTAssertTrue(claimable.isEmpty, "never claimed again")
    }

    func testTheLimitIsASetting() async throws {
        let database = try await TestDatabase.migrated(Self.name)
        let store = JobStore(database: database)
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}', max_attempts => 100)")
        for round in 1...3 {
            _ = try await claimAndDie(store, database, worker: "crashed-\(round)")
            let rescued = try await store.rescueExpired(
                limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0, maxLostRuns: 3)
            XCTAssertEqual(rescued.map(\.status), [round < 3 ? .queued : .failed], "round \(round)")
        }
        // 0: no limit; max_attempts decides (released and failed runs do not count as lost).
        _ = try await database.execute("SELECT muwa.enqueue('ping', '{}', max_attempts => 100)")
        for round in 1...3 {
            _ = try await claimAndDie(store, database, worker: "again-\(round)")
            let rescued = try await store.rescueExpired(
                limit: 10, minimumServerUptime: 0, retryDelaySeconds: 0, maxLostRuns: 0)
            XCTAssertEqual(rescued.map(\.status), [.queued], "round \(round)")
        }
    }
}
