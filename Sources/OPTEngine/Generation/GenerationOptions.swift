// What a caller may ask of a generation, validated with messages that name the bad setting.

public struct GenerationOptions: Sendable, Equatable {
    public var maxNewTokens: Int
    public var doSample: Bool
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var repetitionPenalty: Float
    public var seed: UInt64
    public var stop: [String]
    /// Stop when the model emits EOS (transformers' default; the Muwa eval notebook's release did not).
    public var stopAtEOS: Bool
    /// Overrides the model's EOS id (transformers' `eos_token_id` generation setting).
    public var eosTokenId: Int?

    public init(
        maxNewTokens: Int = 50, doSample: Bool = false, temperature: Float = 1, topK: Int = 0, topP: Float = 1,
        repetitionPenalty: Float = 1, seed: UInt64 = 0, stop: [String] = [], stopAtEOS: Bool = true,
        eosTokenId: Int? = nil
    ) {
        self.maxNewTokens = maxNewTokens
        self.doSample = doSample
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
        self.stop = stop
        self.stopAtEOS = stopAtEOS
        self.eosTokenId = eosTokenId
    }

    public func validate() throws {
        func bad(_ m: String) -> EngineError { .invalidRequest(m) }
        guard maxNewTokens >= 0 && maxNewTokens <= 1 << 20 else {
            throw bad("max_new_tokens must be ≥ 0, got \(maxNewTokens)")
        }
        guard temperature.isFinite && temperature > 0 else { throw bad("temperature must be > 0, got \(temperature)") }
        guard topK >= 0 else { throw bad("top_k must be ≥ 0, got \(topK)") }
        guard topP.isFinite && topP > 0 && topP <= 1 else { throw bad("top_p must be in (0, 1], got \(topP)") }
        guard repetitionPenalty.isFinite && repetitionPenalty > 0 else {
            throw bad("repetition_penalty must be > 0, got \(repetitionPenalty)")
        }
        guard !stop.contains("") else { throw bad("stop strings must not be empty") }
    }
}

public enum FinishReason: String, Sendable, Codable {
    case eos, length, stop, cancelled
}

public struct GenerationOutput: Sendable, Equatable {
    /// The generated text (special tokens skipped; cut before a stop string).
    public var text: String
    /// Generated token ids only (EOS included when it ended the sequence).
    public var tokenIds: [Int]
    public var promptTokenCount: Int
    public var finishReason: FinishReason
}
