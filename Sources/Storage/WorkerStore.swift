// WorkerStore: muwa.workers, one row per running daemon (SQL/workers.sql). Dashboards and `muwad status`
// read it; nothing in the queue's correctness depends on it (leases do that).

/// The states of muwa.workers.state.
public enum WorkerState: String, Sendable {
    case starting, running, draining, stopped, lost
}

/// Identity of one daemon process.
public struct WorkerIdentity: Sendable {
    /// Unique per process start: "host:pid:start-epoch".
    public let id: String
    public let host: String
    public let pid: Int32
    public let version: String

    public init(id: String, host: String, pid: Int32, version: String) {
        self.id = id
        self.host = host
        self.pid = pid
        self.version = version
    }
}

/// Queries on muwa.workers.
public struct WorkerStore: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    public func register(_ worker: WorkerIdentity, queues: [String], kinds: [String], concurrency: Int) async throws {
        _ = try await database.execute(
            .workerRegister,
            [
                worker.id, worker.host, String(worker.pid), worker.version, PGArray.text(queues), PGArray.text(kinds),
                String(concurrency),
            ])
    }

    public func update(_ workerID: String, state: WorkerState, currentJobs: [Int64], statusLine: String) async throws {
        _ = try await database.execute(
            .workerUpdate, [workerID, state.rawValue, PGArray.bigint(currentJobs), String(statusLine.prefix(500))])
    }

    /// Marks workers unseen for `seconds` as lost; returns their ids.
    public func markLost(unseenFor seconds: Double) async throws -> [String] {
        try await database.execute(.workerMarkLost, [String(seconds)]).rows.map { try $0.string("id") }
    }

    /// Deletes stopped/lost workers older than `days`.
    public func prune(olderThanDays days: Int) async throws {
        _ = try await database.execute(.workerPrune, [String(days)])
    }
}
