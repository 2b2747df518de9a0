// PayloadValidation: a job payload checked by its kind's request parser alone — every check a job makes
// before it looks at a model, an adapter or a file — without running anything. The fuzz targets
// (Sources/FuzzTargets) feed payloads through it; a caller may use it to refuse a payload early.
import JobQueue
import Storage

/// Validates payloads of the kinds that have a request parser.
public enum PayloadValidation {
    /// The kinds with a request parser (ping reads its few fields while it runs).
    public static let kinds = ["generate", "finetune", "evaluate"]

    /// Throws the job's permanent failure when `payload` is not a valid payload of `kind`.
    public static func validate(kind: String, payload: JSONValue?) throws {
        switch kind {
        case "generate": _ = try GenerateRequest(payload: payload)
        case "finetune": _ = try FineTuneRequest(payload: payload)
        case "evaluate": _ = try EvaluateRequest(payload: payload)
        default: throw JobFailure.permanent("no request parser for job kind \"\(kind)\"")
        }
    }
}
