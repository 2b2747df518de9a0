// PingExecutor: the `ping` kind, which monitoring uses to check the pipeline end to end. It returns its
// payload as its result. Options: `sleep_ms` waits that long first (reporting progress, stopping early on
// cancel or shutdown); `fail` fails with the given message (`fail_attempts: n` only on the first n
// attempts; `retryable: false` makes the failure permanent).
import JobQueue
import Storage

/// Echoes its payload; optionally sleeps or fails.
public struct PingExecutor: JobExecutor {
    public let kind = "ping"

    public init() {}

    public func execute(_ job: ClaimedJob, context: JobContext) async throws -> JobOutcome {
        let payload = try PayloadReader(kind: kind, payload: job.payload)
        let sleepMs = try payload.optionalInt("sleep_ms", in: 0...86_400_000) ?? 0
        let failAttempts = try payload.optionalInt("fail_attempts", in: 1...1000)
        let retryable = try payload.optionalBool("retryable") ?? true
        var failMessage: String?
        if let value = payload.object["fail"], value != .null {
            switch value {
            case .string(let text) where !text.isEmpty:
                failMessage = text
            case .bool(true):
                failMessage = "ping failed as its payload asked"
            case .bool(false):
                failMessage = nil
            default:
                throw payload.failure(
                    "fail must be a non-empty string (the error message) or a boolean, got \(value.typeName)")
            }
        }

        if sleepMs > 0 {
            let total = Double(sleepMs) / 1000
            let start = context.elapsedSeconds
            while true {
                let done = context.elapsedSeconds - start
                if done >= total { break }
                context.reportProgress(done / total, detail: ["slept_ms": .number((done * 1000).rounded())])
                if !(await context.sleep(seconds: min(0.1, total - done))) {
                    return .stopped(partial: job.payload, outputs: [], checkpoint: nil)
                }
            }
        }
        if let failMessage, job.attempt <= (failAttempts ?? Int.max) {
            throw JobFailure(failMessage, retryable: retryable)
        }
        return .succeeded(job.payload)
    }
}
