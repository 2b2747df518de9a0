// Cleaner: work directories of jobs finished longer ago than the retention go (and those of jobs whose row is
// gone, once old); queued, running and recent ones stay; finished jobs are pruned only when a job retention
// is set, with their outputs.
import Foundation
import JobQueue
import Storage
import XCTest
import TestSupport

final class CleanerTests: XCTestCase {
    func testWorkDirectoriesAndFinishedJobsGoAfterTheirRetention() async throws {
        let database = try await TestDatabase.migrated("muwa_test_cleaner")
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-cleaner-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: state) }
        func enqueue() async throws -> Int64 {
            Int64(try await database.scalar("SELECT muwa.enqueue('ping', '{}')") ?? "") ?? -1
        }
        let old = try await enqueue(), recent = try await enqueue(), running = try await enqueue(),
            queued = try await enqueue()
        // Finished 8 days ago, finished just now, running (lease held), queued.
        _ = try await database.execute(
            "UPDATE muwa.jobs SET status = 'succeeded', finished_at = now() - interval '8 days' WHERE id = $1",
            [String(old)])
        _ = try await database.execute(
            "UPDATE muwa.jobs SET status = 'cancelled', finished_at = now() WHERE id = $1", [String(recent)])
        _ = try await database.execute(
            "UPDATE muwa.jobs SET status = 'running', worker_id = 'w', lease_expires_at = now() + interval '1 h', attempt = 1 WHERE id = $1",
            [String(running)])
        _ = try await database.execute(
            "INSERT INTO muwa.job_outputs (job_id, attempt, idx, output) VALUES ($1, 0, 0, '\"x\"')", [String(old)])
        let goneOld: Int64 = 9_000_001, goneNew: Int64 = 9_000_002
        for id in [old, recent, running, queued, goneOld, goneNew] {
            try FileManager.default.createDirectory(
                atPath: state + "/jobs/\(id)/checkpoints", withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(atPath: state + "/jobs/not-a-job", withIntermediateDirectories: true)
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-9 * 86_400)], ofItemAtPath: state + "/jobs/\(goneOld)")

        let store = JobStore(database: database)
        let keepRows = Cleaner(
            configuration: CleanerConfiguration(), stateDirectory: state, store: store,
            logger: TestDatabase.quietLogger)
        let first = await keepRows.cleanOnce()
        XCTAssertEqual(Set(first.directories), [old, goneOld])
        XCTAssertEqual(first.jobs, 0, "rows stay without a job retention")
        for id in [recent, running, queued, goneNew] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: state + "/jobs/\(id)"), "job \(id)'s directory went")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: state + "/jobs/not-a-job"))

        let pruning = Cleaner(
            configuration: CleanerConfiguration(jobRetentionSeconds: 86_400), stateDirectory: state,
            store: store, logger: TestDatabase.quietLogger)
        let second = await pruning.cleanOnce()
        XCTAssertEqual(second.jobs, 1)
        let left = try await database.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM muwa.jobs")
        XCTAssertEqual(left, [recent, running, queued].map(String.init).joined(separator: ","))
        let outputs = try await database.scalar(
            "SELECT count(*) FROM muwa.job_outputs WHERE job_id = $1", [String(old)])
        XCTAssertEqual(outputs, "0")
    }
}
