// The payload keys every model-loading job takes to choose how its model computes: `compute` (f32 | bf16 |
// auto), `weights` (stored | int8) and `int8_threshold`. Checked when the payload is read (a bad value fails
// the job at once, naming the key); resolved against the daemon's default (MUWA_COMPUTE) when the job runs.
import JobQueue
import OPTEngine

struct EnginePayload: Equatable {
    static let fields: Set<String> = ["compute", "weights", "int8_threshold"]

    var compute: String?
    var weights: String?
    var int8Threshold: Double?

    init(_ reader: PayloadReader) throws {
        compute = try reader.optionalString("compute", maxLength: 16)
        weights = try reader.optionalString("weights", maxLength: 16)
        int8Threshold = try reader.optionalDouble("int8_threshold", in: 0...1e6)
        if int8Threshold != nil, weights?.lowercased() != "int8" {
            throw reader.failure("int8_threshold goes with \"weights\": \"int8\"")
        }
        do {
            _ = try resolve(defaults: .product)
        } catch EngineError.invalidRequest(let message) {
            throw reader.failure(message)
        }
    }

    /// The options this job's model is loaded with: the payload's keys over the daemon's `defaults`.
    func resolve(defaults: EngineOptions) throws -> EngineOptions {
        try EngineOptions.parse(compute: compute, weights: weights, int8Threshold: int8Threshold, base: defaults)
    }
}
