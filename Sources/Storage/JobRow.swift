// JobRow: a claimed job as the worker sees it, and the lease that guards every write after the claim
// (cf. river's rivertype.JobRow). Payloads are decoded here; a payload that is not UTF-8 or not JSON does
// not stop the claim, it travels as `payloadError` so the job can fail with that message.
import Foundation

/// The statuses of muwa.jobs.status.
public enum JobStatus: String, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled
}

/// Identifies one attempt of one job by one worker: the guard of every write after the claim.
public struct JobLease: Sendable, Hashable, CustomStringConvertible {
    public let jobID: Int64
    public let workerID: String
    public let attempt: Int

    public init(jobID: Int64, workerID: String, attempt: Int) {
        self.jobID = jobID
        self.workerID = workerID
        self.attempt = attempt
    }

    public var description: String { "job \(jobID) attempt \(attempt) by \(workerID)" }
}

/// A job this worker has just claimed.
public struct ClaimedJob: Sendable {
    public let lease: JobLease
    public let kind: String
    public let queue: String
    /// The payload, or nil when it could not be decoded (see ``payloadError``).
    public let payload: JSONValue?
    /// Why the payload could not be decoded ("column payload is not valid UTF-8 (byte 0xFF at offset 12)").
    public let payloadError: String?
    public let priority: Int
    public let maxAttempts: Int
    /// The job's own time limit in seconds, if it has one.
    public let timeLimitSeconds: Double?
    public let cancelRequested: Bool
    /// What a previous, released attempt left to resume from.
    public let checkpoint: JSONValue?
    /// The muwa.job_runs row of this attempt.
    public let runID: Int64

    public var id: Int64 { lease.jobID }
    public var attempt: Int { lease.attempt }

    init(row: Row, workerID: String) throws {
        let id = Int64(try row.int("id"))
        lease = JobLease(jobID: id, workerID: workerID, attempt: try row.int("attempt"))
        kind = try row.string("kind")
        queue = try row.string("queue")
        do {
            payload = try row.json("payload")
            payloadError = nil
        } catch let error as StorageError {
            payload = nil
            payloadError = error.message
        }
        priority = try row.int("priority")
        maxAttempts = try row.int("max_attempts")
        timeLimitSeconds = try row.optionalDouble("time_limit_seconds")
        cancelRequested = try row.bool("cancel_requested")
        checkpoint = try? row.json("checkpoint")
        runID = Int64(try row.int("run_id"))
    }

    /// For tests and tools that run an executor without a database.
    public init(
        lease: JobLease, kind: String, payload: JSONValue?, queue: String = "default", payloadError: String? = nil,
        priority: Int = 0, maxAttempts: Int = 3, timeLimitSeconds: Double? = nil, cancelRequested: Bool = false,
        checkpoint: JSONValue? = nil, runID: Int64 = 0
    ) {
        self.lease = lease
        self.kind = kind
        self.queue = queue
        self.payload = payload
        self.payloadError = payloadError
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.timeLimitSeconds = timeLimitSeconds
        self.cancelRequested = cancelRequested
        self.checkpoint = checkpoint
        self.runID = runID
    }
}

/// A job the rescuer took back from a worker whose lease expired.
public struct RescuedJob: Sendable {
    public let id: Int64
    public let kind: String
    /// `queued` (will run again), `failed` (attempts used up) or `cancelled`.
    public let status: JobStatus
    public let attempt: Int
    public let lostWorker: String
}

/// What a heartbeat found.
public enum HeartbeatResult: Sendable, Equatable {
    /// The lease was renewed; `cancelRequested` says whether someone called muwa.cancel.
    case renewed(cancelRequested: Bool)
    /// No row matched: the job is not ours any more (rescued, or its status changed).
    case lost
}

/// Where a failed attempt left the job.
public struct FailureRecord: Sendable {
    /// `queued` (a retry is scheduled), `failed` or `cancelled`.
    public let status: JobStatus
    /// Seconds until the retry may run, for `queued`.
    public let retryInSeconds: Double?
}

/// Formats PostgreSQL array literals for `$n::text[]` / `$n::bigint[]` parameters.
public enum PGArray {
    public static func text(_ values: [String]) -> String {
        let quoted = values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }

    public static func bigint(_ values: [Int64]) -> String {
        "{" + values.map(String.init).joined(separator: ",") + "}"
    }
}
