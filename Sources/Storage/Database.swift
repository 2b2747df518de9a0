// Database: one PostgreSQL connection behind a serial dispatch queue, with an async API.
// libpq calls block, so they run on the queue's own thread instead of Swift's cooperative pool (a blocked
// pool thread would stall heartbeats). A broken connection is dropped and reopened on the next call, with
// exponential backoff between failed attempts; callers see transient StorageErrors meanwhile and decide
// themselves whether to retry (the daemon's loops do, forever).
//
// Every call is timed twice over (DatabaseUsage): how long it waited for the serial queue, and how long it
// then held it. A large wait share says the callers sharing this one connection are queueing behind each
// other (issue 12: measure before adding connections).
import Dispatch
import Foundation
import Logging
import Synchronization

/// An auto-reconnecting connection that runs statements one at a time.
public final class Database: @unchecked Sendable {
    public let settings: ConnectionSettings
    /// What the connection is for ("commands", "leases", …): the queue's name and the usage's label.
    public let label: String
    private let queue: DispatchQueue
    private let logger: Logger
    private let initialBackoff: Double
    private let maximumBackoff: Double

    // Usage counters: written only on `queue` (one writer, so a plain load and store keeps the maximum),
    // read from anywhere by `usage`. Relaxed: a snapshot's fields may be a call apart, never torn.
    private let callCount = Atomic<Int>(0)
    private let waitNanoseconds = Atomic<UInt64>(0)
    private let runNanoseconds = Atomic<UInt64>(0)
    private let maxWaitNanoseconds = Atomic<UInt64>(0)

    // Confined to `queue`.
    private var connection: PGConnection?
    private var nextConnectAttempt: Date = .distantPast
    private var backoff: Double
    private var lastConnectError: StorageError?
    private var lostSince: Date?

    /// - Parameters:
    ///   - label: names the queue and the log lines ("commands", "listener", …).
    ///   - maximumBackoff: the longest wait between reconnect attempts, in seconds.
    public init(
        settings: ConnectionSettings, label: String, logger: Logger,
        initialBackoff: Double = 0.1, maximumBackoff: Double = 5
    ) {
        self.settings = settings
        self.label = label
        self.queue = DispatchQueue(label: "muwa.db.\(label)")
        var logger = logger
        logger[metadataKey: "db"] = "\(label)"
        self.logger = logger
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.backoff = initialBackoff
    }

    /// Runs `body` with an open connection on the database queue, connecting first if needed.
    ///
    /// A transient failure inside `body` drops the connection so the next call reconnects. The call counts
    /// in `usage` (failed ones too), before the caller resumes.
    public func withConnection<T>(_ body: @escaping (PGConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let submittedNanoseconds = DispatchTime.now().uptimeNanoseconds
            queue.async {
                let startedNanoseconds = DispatchTime.now().uptimeNanoseconds
                let result = Result { try self.runOnQueue(body) }
                self.countCall(
                    waitNanoseconds: Self.elapsed(from: submittedNanoseconds, to: startedNanoseconds),
                    runNanoseconds: Self.elapsed(from: startedNanoseconds, to: DispatchTime.now().uptimeNanoseconds))
                continuation.resume(with: result)
            }
        }
    }

    /// Calls so far and the time they spent waiting for the connection versus running on it.
    public var usage: DatabaseUsage {
        DatabaseUsage(
            label: label, calls: callCount.load(ordering: .relaxed),
            waitSeconds: Double(waitNanoseconds.load(ordering: .relaxed)) * 1e-9,
            runSeconds: Double(runNanoseconds.load(ordering: .relaxed)) * 1e-9,
            maxWaitSeconds: Double(maxWaitNanoseconds.load(ordering: .relaxed)) * 1e-9)
    }

    /// Runs one parameterized statement.
    public func execute(_ sql: String, _ parameters: [String?] = [], statement: String? = nil) async throws
        -> QueryResult
    {
        try await withConnection { try $0.execute(sql, parameters, statement: statement) }
    }

    /// Runs one named statement from the SQL resources.
    public func execute(_ statement: SQLStatement, _ parameters: [String?] = []) async throws -> QueryResult {
        let sql = try SQLLibrary.shared().sql(for: statement)
        return try await execute(sql, parameters, statement: statement.rawValue)
    }

    /// Runs `body` between BEGIN and COMMIT (ROLLBACK when it throws).
    public func transaction<T>(_ body: @escaping (PGConnection) throws -> T) async throws -> T {
        try await withConnection { connection in
            _ = try connection.execute("BEGIN", statement: "BEGIN")
            do {
                let value = try body(connection)
                _ = try connection.execute("COMMIT", statement: "COMMIT")
                return value
            } catch {
                if connection.isOK { _ = try? connection.execute("ROLLBACK", statement: "ROLLBACK") }
                throw error
            }
        }
    }

    /// Closes the connection (it reopens on the next call).
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.connection = nil
                continuation.resume()
            }
        }
    }

    // MARK: - On the queue

    private func countCall(waitNanoseconds wait: UInt64, runNanoseconds run: UInt64) {
        callCount.wrappingAdd(1, ordering: .relaxed)
        waitNanoseconds.wrappingAdd(wait, ordering: .relaxed)
        runNanoseconds.wrappingAdd(run, ordering: .relaxed)
        if wait > maxWaitNanoseconds.load(ordering: .relaxed) { maxWaitNanoseconds.store(wait, ordering: .relaxed) }
    }

    /// Monotonic nanoseconds from `start` to `end`, 0 if the clock readings come out of order.
    private static func elapsed(from start: UInt64, to end: UInt64) -> UInt64 {
        end >= start ? end - start : 0
    }

    private func runOnQueue<T>(_ body: (PGConnection) throws -> T) throws -> T {
        let connection = try connectedOnQueue()
        do {
            return try body(connection)
        } catch let error as StorageError {
            if !connection.isOK || error.code == .connectionLost {
                self.connection = nil
                noteLost(error)
            }
            throw error
        }
    }

    private func connectedOnQueue() throws -> PGConnection {
        if let connection, connection.isOK { return connection }
        connection = nil
        let now = Date()
        if now < nextConnectAttempt, let lastConnectError {
            let wait = nextConnectAttempt.timeIntervalSince(now)
            throw StorageError(
                .connectionFailed,
                "database unavailable (next reconnect in \(String(format: "%.1f", wait)) s): \(lastConnectError.message)"
            )
        }
        do {
            let fresh = try PGConnection.connect(settings)
            connection = fresh
            backoff = initialBackoff
            lastConnectError = nil
            nextConnectAttempt = .distantPast
            if let lostSince {
                let seconds = String(format: "%.1f", Date().timeIntervalSince(lostSince))
                logger.info("database connection re-established after \(seconds) s")
                self.lostSince = nil
            }
            return fresh
        } catch let error as StorageError {
            noteLost(error)
            lastConnectError = error
            // Full jitter keeps a fleet of workers from reconnecting in lockstep after a restart.
            nextConnectAttempt = now.addingTimeInterval(backoff * Double.random(in: 0.5...1.0))
            backoff = min(backoff * 2, maximumBackoff)
            throw error
        }
    }

    private func noteLost(_ error: StorageError) {
        if lostSince == nil {
            lostSince = Date()
            logger.warning("database connection lost: \(error.message)")
        }
    }
}

// MARK: - Usage

// DatabaseUsage: how one Database's calls shared its single serialized connection. Each call first waits for
// the connection's queue (behind the calls submitted before it), then runs there (connecting if needed, the
// statement's round trip, reading the result). A wait that is a large share of the total means the callers
// are contending for the connection; a small one means another connection would not help.

/// Calls on one connection, with their queue wait and run time totals (seconds).
public struct DatabaseUsage: Sendable, Equatable, Codable {
    /// The Database's label ("commands", "leases", "metrics", …).
    public var label: String
    /// Calls finished (failed ones included).
    public var calls: Int
    /// Total seconds calls waited for the queue before running.
    public var waitSeconds: Double
    /// Total seconds calls held the queue (the connection) once they ran.
    public var runSeconds: Double
    /// The longest single wait, in seconds.
    public var maxWaitSeconds: Double

    public init(label: String, calls: Int, waitSeconds: Double, runSeconds: Double, maxWaitSeconds: Double) {
        self.label = label
        self.calls = calls
        self.waitSeconds = waitSeconds
        self.runSeconds = runSeconds
        self.maxWaitSeconds = maxWaitSeconds
    }

    /// Mean seconds a call waited (0 without calls).
    public var meanWaitSeconds: Double { calls > 0 ? waitSeconds / Double(calls) : 0 }

    /// Mean seconds a call ran (0 without calls).
    public var meanRunSeconds: Double { calls > 0 ? runSeconds / Double(calls) : 0 }

    /// The share (0…1) of the calls' time on this connection spent waiting rather than running.
    public var waitShare: Double {
        let total = waitSeconds + runSeconds
        return total > 0 ? waitSeconds / total : 0
    }

    /// The sum of several snapshots under one label (e.g. the "commands" connections of several daemons);
    /// the maximum wait is the largest of theirs.
    public static func combined(_ usages: [DatabaseUsage], label: String) -> DatabaseUsage {
        DatabaseUsage(
            label: label, calls: usages.reduce(0) { $0 + $1.calls },
            waitSeconds: usages.reduce(0) { $0 + $1.waitSeconds }, runSeconds: usages.reduce(0) { $0 + $1.runSeconds },
            maxWaitSeconds: usages.map(\.maxWaitSeconds).max() ?? 0)
    }

    /// One line for logs, e.g. "completions: 4000 calls, wait mean 3.213 ms (max 20.85 ms), run mean 0.563 ms,
    /// wait 85 % of wait+run".
    public var summary: String {
        "\(label): "
            + String(
                format: "%d calls, wait mean %.3f ms (max %.2f ms), run mean %.3f ms, wait %.0f %% of wait+run",
                calls, meanWaitSeconds * 1000, maxWaitSeconds * 1000, meanRunSeconds * 1000, waitShare * 100)
    }
}
