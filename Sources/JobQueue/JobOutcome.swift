// JobOutcome and JobFailure: how an execution ended, as values (cf. river's JobCancel/JobSnooze).
// The runner turns them into guarded writes: succeeded/cancelled via JobFinish, failures via JobFail with
// the retry policy, stops via JobFinish(cancelled), JobRelease or JobFail depending on why it stopped.
import Storage

/// A failure, with whether retrying can help.
public struct JobFailure: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was wrong, for the error history and the log: "payload.max_new_tokens must be …".
    public let message: String
    /// False for failures a retry cannot fix (invalid payload, missing model): the job fails at once.
    public let retryable: Bool

    public init(_ message: String, retryable: Bool) {
        self.message = message
        self.retryable = retryable
    }

    /// A failure retrying cannot fix.
    public static func permanent(_ message: String) -> JobFailure { JobFailure(message, retryable: false) }
    /// A failure that may go away (a busy resource, a flaky input).
    public static func retryable(_ message: String) -> JobFailure { JobFailure(message, retryable: true) }

    public var description: String { message }
}

/// How an execution ended.
public enum JobOutcome: Sendable {
    /// Done. `result` is a small summary stored on the job; `outputs` go to muwa.job_outputs, one row each.
    case succeeded(result: JSONValue?, outputs: [JSONValue])
    /// Failed; retried with backoff when ``JobFailure/retryable`` and attempts are left.
    case failed(JobFailure)
    /// Stopped early because ``JobContext/stopReason`` was set: keeps partial results (a cancelled job) and a
    /// checkpoint to resume from (a released job).
    case stopped(partial: JSONValue?, outputs: [JSONValue], checkpoint: JSONValue?)

    public static func succeeded(_ result: JSONValue?) -> JobOutcome { .succeeded(result: result, outputs: []) }
    public static var stopped: JobOutcome { .stopped(partial: nil, outputs: [], checkpoint: nil) }
}
