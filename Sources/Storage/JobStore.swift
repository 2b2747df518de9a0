// JobStore: typed wrappers over the named statements of SQL/jobs.sql (cf. river's riverdriver.Executor).
// Each call is one statement in its own implicit transaction: no transaction stays open while a job runs.

/// The job-lifecycle queries.
public struct JobStore: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// Claims up to `limit` runnable jobs for `workerID`, `FOR UPDATE SKIP LOCKED`, in claim order.
    public func claim(queues: [String], kinds: [String], limit: Int, workerID: String, leaseSeconds: Double)
        async throws -> [ClaimedJob]
    {
        guard limit > 0, !queues.isEmpty, !kinds.isEmpty else { return [] }
        let result = try await database.execute(
            .jobClaim,
            [PGArray.text(queues), PGArray.text(kinds), String(limit), workerID, String(leaseSeconds)])
        return try result.rows.map { try ClaimedJob(row: $0, workerID: workerID) }
    }

    /// Renews the lease and optionally stores progress (0…1) and a short detail object.
    public func heartbeat(_ lease: JobLease, leaseSeconds: Double, progress: Double? = nil, detail: JSONValue? = nil)
        async throws -> HeartbeatResult
    {
        let result = try await database.execute(
            .jobHeartbeat,
            [
                String(lease.jobID), lease.workerID, String(lease.attempt), String(leaseSeconds),
                progress.map { String(min(max($0, 0), 1)) }, detail?.jsonText,
            ])
        guard let row = result.first else { return .lost }
        return .renewed(cancelRequested: try row.bool("cancel_requested"))
    }

    /// Appends events (training-log rows) written while the job runs. Returns false when the job is not ours.
    public func appendEvents(_ lease: JobLease, runID: Int64, events: [JSONValue]) async throws -> Bool {
        guard !events.isEmpty else { return true }
        let rows = try await database.execute(
            .jobEventsAppend,
            [
                String(lease.jobID), lease.workerID, String(lease.attempt), JSONValue.array(events).jsonText,
                String(runID),
            ])
        return !rows.rows.isEmpty
    }

    /// Records success, or a cancellation with partial results. Returns false when the job is not ours.
    public func finish(
        _ lease: JobLease, status: JobStatus, result: JSONValue?, outputs: [JSONValue]
    ) async throws -> Bool {
        precondition(status == .succeeded || status == .cancelled, "finish records succeeded or cancelled")
        let rows = try await database.execute(
            .jobFinish,
            [
                String(lease.jobID), lease.workerID, String(lease.attempt), status.rawValue, result?.jsonText,
                JSONValue.array(outputs).jsonText,
            ])
        return !rows.rows.isEmpty
    }

    /// Records a failed attempt; retryable failures with attempts left go back to the queue after
    /// `retryDelaySeconds`. Returns nil when the job is not ours.
    public func fail(_ lease: JobLease, message: String, retryable: Bool, retryDelaySeconds: Double) async throws
        -> FailureRecord?
    {
        let rows = try await database.execute(
            .jobFail,
            [
                String(lease.jobID), lease.workerID, String(lease.attempt), message, retryable ? "true" : "false",
                String(max(0, retryDelaySeconds)),
            ])
        guard let row = rows.first else { return nil }
        let status = JobStatus(rawValue: try row.string("status")) ?? .failed
        return FailureRecord(
            status: status, retryInSeconds: status == .queued ? try row.optionalDouble("retry_in_seconds") : nil)
    }

    /// Gives the job back to the queue without using up its attempt. Returns the new status (`queued`, or
    /// `cancelled` when a cancel was pending), nil when the job is not ours.
    public func release(_ lease: JobLease, checkpoint: JSONValue?, reason: String) async throws -> JobStatus? {
        let rows = try await database.execute(
            .jobRelease, [String(lease.jobID), lease.workerID, String(lease.attempt), checkpoint?.jsonText, reason])
        guard let row = rows.first else { return nil }
        return JobStatus(rawValue: try row.string("status"))
    }

    /// Who holds a job now: explains a guarded write that matched no row.
    public func state(of jobID: Int64) async throws -> (status: JobStatus, workerID: String?, attempt: Int)? {
        guard let row = try await database.execute(.jobState, [String(jobID)]).first else { return nil }
        return (
            JobStatus(rawValue: try row.string("status")) ?? .failed, try row.text("worker_id"), try row.int("attempt")
        )
    }

    /// Whether the job's row asks for a cancel: true only while the job is still ours (id, worker, attempt,
    /// running) and `cancel_requested` is set. A notification is never trusted on its own.
    public func cancelRequested(_ lease: JobLease) async throws -> Bool {
        let rows = try await database.execute(
            .jobCancelRequested, [String(lease.jobID), lease.workerID, String(lease.attempt)])
        return try rows.first?.bool("cancel_requested") ?? false
    }

    /// Takes back up to `limit` jobs whose lease expired.
    ///
    /// - Parameters:
    ///   - minimumServerUptime: rescue nothing while PostgreSQL has been up for less than this (seconds),
    ///     so live workers can renew their leases after a server restart.
    ///   - retryDelaySeconds: when a rescued job may run again.
    ///   - maxLostRuns: a job whose runs were lost this many times (this one included) fails permanently,
    ///     whatever its max_attempts (a job that crashes the daemon must not crash every worker); 0: no limit.
    public func rescueExpired(limit: Int, minimumServerUptime: Double, retryDelaySeconds: Double, maxLostRuns: Int = 2)
        async throws -> [RescuedJob]
    {
        let rows = try await database.execute(
            .jobRescueExpired,
            [String(limit), String(minimumServerUptime), String(retryDelaySeconds), String(max(0, maxLostRuns))])
        return try rows.rows.map { row in
            RescuedJob(
                id: Int64(try row.int("id")), kind: try row.string("kind"),
                status: JobStatus(rawValue: try row.string("status")) ?? .failed,
                attempt: try row.int("attempt"), lostWorker: try row.text("lost_worker") ?? "?")
        }
    }

    /// Of `ids`, the jobs that exist, each with whether it finished more than `seconds` ago.
    public func workExpiry(ids: [Int64], olderThan seconds: Double) async throws -> [Int64: Bool] {
        guard !ids.isEmpty else { return [:] }
        let result = try await database.execute(
            .jobWorkExpiry, [PGArray.bigint(ids), String(seconds)])
        var expiry: [Int64: Bool] = [:]
        for row in result.rows { expiry[Int64(try row.int("id"))] = try row.bool("expired") }
        return expiry
    }

    /// Deletes up to `limit` jobs finished more than `seconds` ago (outputs, runs and events with them).
    public func pruneFinished(olderThan seconds: Double, limit: Int) async throws -> [Int64] {
        let result = try await database.execute(.jobPruneFinished, [String(seconds), String(limit)])
        return try result.rows.map { Int64(try $0.int("id")) }
    }
}
