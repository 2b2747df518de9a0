// Executors that hold their thread (CPU-bound work written straight into `execute`) must not stop the
// daemon's heartbeats: JobRunner runs them on JobThreads, not on Swift's cooperative pool.
import Foundation
import JobQueue
import Storage
import XCTest
import TestSupport

final class JobThreadsTests: XCTestCase {
    /// Blocks its thread for payload.ms without awaiting, then reads (synchronously, on that same thread)
    /// how old its job's last heartbeat is.
    struct ThreadHoggingExecutor: JobExecutor {
        let kind = "ping"
        let settings: ConnectionSettings
        let ages: AgeLog

        func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
            let ms = job.payload?["ms"]?.doubleValue ?? 0
            let end = Date().addingTimeInterval(ms / 1000)
            while Date() < end { usleep(10_000) }
            let connection = try PGConnection.connect(settings)
            let row = try connection.execute(
                "SELECT extract(epoch FROM now() - heartbeat_at)::float8 AS age FROM muwa.jobs WHERE id = $1",
                [String(job.id)]
            ).first
            let age = try row.flatMap { try $0.text("age") }.flatMap(Double.init) ?? .infinity
            ages.append(age)
            return .succeeded(result: ["heartbeat_age": .number(age)], outputs: [])
        }
    }

    final class AgeLog: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Double] = []
        func append(_ value: Double) { lock.withLock { values.append(value) } }
        var all: [Double] { lock.withLock { values } }
    }

    func testExecutorsHoldingTheirThreadsDoNotStopHeartbeats() async throws {
        let database = try await TestDatabase.migrated("muwa_test_job_threads")
        let ages = AgeLog()
        // More hogging jobs than cores: on the cooperative pool they would starve every lease keeper.
        let jobs = max(4, ProcessInfo.processInfo.activeProcessorCount + 2)
        let configuration = testConfiguration(kinds: ["ping"], concurrency: jobs, lease: 1.5, heartbeat: 0.2)
        for _ in 0..<jobs {
            _ = try await database.execute("SELECT muwa.enqueue('ping', '{\"ms\": 3000}')")
        }
        let executor = ThreadHoggingExecutor(settings: database.settings, ages: ages)
        try await withProducer(database, configuration: configuration, executors: [executor], rescue: true) {
            try await waitUntil(seconds: 60) {
                try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status = 'succeeded'") == String(jobs)
            }
        }
        XCTAssertEqual(ages.all.count, jobs)
        for age in ages.all {
            // The heartbeat is 0.2 s: a keeper that kept running renewed the lease well within it.
            XCTAssertLessThan(age, 1.0, "the lease keeper stopped while its executor held a thread")
        }
        let lost = try await database.scalar(
            "SELECT count(*) FROM muwa.job_runs WHERE outcome IS DISTINCT FROM 'succeeded'")
        XCTAssertEqual(lost, "0")
        let attempts = try await database.scalar("SELECT max(attempt) FROM muwa.jobs")
        XCTAssertEqual(attempts, "1")
    }

    func testAJobNeverWaitsForAnotherJobsThread() async throws {
        let pool = JobThreads(name: "test-pool", minimumThreads: 0, maximumThreads: 8, idleSeconds: 1)
        let release = DispatchSemaphore(value: 0)
        // The first task blocks its thread; the second must still run at once on another.
        let blocked = Task(executorPreference: pool) { () -> Bool in
            release.wait()
            return true
        }
        let second = Task(executorPreference: pool) { () -> Int in 42 }
        let value = await second.value
        XCTAssertEqual(value, 42)
        release.signal()
        let first = await blocked.value
        XCTAssertTrue(first)
        XCTAssertGreaterThanOrEqual(pool.counts.started, 2)
    }
}

/// An executor that overruns its time limit and ignores the stop for longer than the stop timeout is
/// abandoned (the job fails at once), and its work then really stops: the stop flag stays set, so the
/// blocking loop ends at its next check instead of burning a core for as long as it likes.
final class AbandonedWorkTests: XCTestCase {
    final class Probe: @unchecked Sendable {
        private let lock = NSLock()
        private var ended: Date?
        func end() { lock.withLock { ended = Date() } }
        var endedAt: Date? { lock.withLock { ended } }
    }

    struct SlowToStopExecutor: JobExecutor {
        let kind = "ping"
        let probe: Probe

        func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
            try await BlockingWork.run(label: "slow-to-stop") {
                // Work in slices of 1.5 s (longer than the 0.5 s stop timeout), checking for a stop between them.
                while !context.shouldStop {
                    let slice = Date().addingTimeInterval(1.5)
                    while Date() < slice { usleep(5_000) }
                }
                probe.end()
                return .stopped(partial: nil, outputs: [], checkpoint: nil)
            }
        }
    }

    func testAbandonedWorkStopsAtItsNextCheck() async throws {
        let database = try await TestDatabase.migrated("muwa_test_abandoned_work")
        let probe = Probe()
        let id =
            try await database.scalar(
                "SELECT muwa.enqueue('ping', '{}', time_limit => interval '300 milliseconds')") ?? "?"
        let configuration = testConfiguration(kinds: ["ping"], stopTimeout: 0.5)
        var failedAt = Date.distantFuture
        try await withProducer(database, configuration: configuration, executors: [SlowToStopExecutor(probe: probe)]) {
            try await waitUntil(seconds: 20) {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "failed"
            }
            failedAt = Date()
        }
        let message = try await database.scalar("SELECT errors->0->>'message' FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(
            message, "the job exceeded its time limit of 300 ms (the executor did not stop and was abandoned)")
        // The abandoned loop ends within one slice of the failure.
        let deadline = Date().addingTimeInterval(5)
        while probe.endedAt == nil, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let ended = try XCTUnwrap(probe.endedAt, "the abandoned work never stopped")
        XCTAssertLessThan(ended.timeIntervalSince(failedAt), 2.5)
    }
}
