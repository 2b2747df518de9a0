// Test support: a fresh migrated database per test class, test executors, and a producer harness that runs
// the real Producer (and optionally the NotificationService and Rescuer) in-process with short timings.
import Foundation
import JobQueue
import Logging
import Storage
import XCTest
import TestSupport

/// The first row of a query, or a test failure.
func firstRow(_ database: Database, _ sql: String, _ parameters: [String?] = []) async throws -> Row {
    guard let row = try await database.execute(sql, parameters).first else {
        throw TestSetupError(description: "no row from \(sql)")
    }
    return row
}

/// Short timings for tests.
func testConfiguration(
    kinds: [String], concurrency: Int = 2, lease: Double = 2, heartbeat: Double = 0.3, poll: Double = 0.1,
    stopTimeout: Double = 2
) -> QueueConfiguration {
    QueueConfiguration(
        workerID: "test:\(UUID().uuidString.prefix(8))", queues: ["default"], kinds: kinds, concurrency: concurrency,
        leaseSeconds: lease, heartbeatSeconds: heartbeat, pollSeconds: poll, gracePeriodSeconds: 1,
        stopTimeoutSeconds: stopTimeout, rescueIntervalSeconds: 0.2, progressIntervalSeconds: 0.2,
        retryPolicy: RetryPolicy(baseSeconds: 0.2, maximumSeconds: 1, jitter: 0),
        stateDirectory: FileManager.default.temporaryDirectory.path + "/muwa-jobqueue-tests")
}

/// Runs `body` while a Producer (plus listener and rescuer when asked) serves the database; stops it after.
func withProducer(
    _ database: Database, configuration: QueueConfiguration, executors: [any JobExecutor], listen: Bool = false,
    rescue: Bool = false, _ body: () async throws -> Void
) async throws {
    let monitor = QueueMonitor()
    let doorbell = Doorbell()
    let store = JobStore(database: database)
    let producer = Producer(
        configuration: configuration, store: store, registry: ExecutorRegistry(executors), monitor: monitor,
        doorbell: doorbell, logger: TestDatabase.quietLogger)
    let listener = NotificationService(
        settings: database.settings, store: store, configuration: configuration, monitor: monitor, doorbell: doorbell,
        logger: TestDatabase.quietLogger)
    let rescuer = Rescuer(
        configuration: configuration, store: store, workers: WorkerStore(database: database), monitor: monitor,
        logger: TestDatabase.quietLogger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await producer.run() }
        if listen { group.addTask { await listener.run() } }
        if rescue { group.addTask { await rescuer.run() } }
        do {
            try await body()
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
    }
}

/// Sleeps for payload.ms (default 0), reporting progress every 10 ms; stops when asked, returning what
/// it did so far. Fails while attempt <= payload.fail_until.
struct SleepExecutor: JobExecutor {
    let kind = "ping"
    let tracker: ConcurrencyTracker

    func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
        tracker.enter()
        defer { tracker.leave() }
        let ms = Int(job.payload?["ms"]?.doubleValue ?? 0)
        if let failUntil = job.payload?["fail_until"]?.doubleValue, Double(job.attempt) <= failUntil {
            throw JobFailure.retryable("planned failure on attempt \(job.attempt)")
        }
        var slept = 0
        while slept < ms {
            if !(await context.sleep(seconds: 0.01)) {
                return .stopped(
                    partial: ["slept_ms": .number(Double(slept))], outputs: ["partial"],
                    checkpoint: ["at": .number(Double(slept))])
            }
            slept += 10
            context.reportProgress(Double(slept) / Double(ms), detail: ["slept_ms": .number(Double(slept))])
        }
        return .succeeded(result: ["slept_ms": .number(Double(slept))], outputs: ["out-1", "out-2"])
    }
}

/// Counts executors running at once.
final class ConcurrencyTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private(set) var maximum = 0
    private(set) var total = 0

    func enter() {
        lock.withLock {
            current += 1
            total += 1
            maximum = max(maximum, current)
        }
    }

    func leave() { lock.withLock { current -= 1 } }
    var peak: Int { lock.withLock { maximum } }
    var running: Int { lock.withLock { current } }
    var started: Int { lock.withLock { total } }
}
