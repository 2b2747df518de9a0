// Database: one PostgreSQL connection behind a serial dispatch queue, with an async API.
// libpq calls block, so they run on the queue's own thread instead of Swift's cooperative pool (a blocked
// pool thread would stall heartbeats). A broken connection is dropped and reopened on the next call, with
// exponential backoff between failed attempts; callers see transient StorageErrors meanwhile and decide
// themselves whether to retry (the daemon's loops do, forever).
import Dispatch
import Foundation
import Logging

/// An auto-reconnecting connection that runs statements one at a time.
public final class Database: @unchecked Sendable {
    public let settings: ConnectionSettings
    private let queue: DispatchQueue
    private let logger: Logger
    private let initialBackoff: Double
    private let maximumBackoff: Double

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
    /// A transient failure inside `body` drops the connection so the next call reconnects.
    public func withConnection<T>(_ body: @escaping (PGConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.runOnQueue(body) })
            }
        }
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
                "database unavailable (next reconnect in \(String(format: "%.1f", wait)) s): \(lastConnectError.message)")
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
