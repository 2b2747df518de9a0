// OPTConfig: config.json of an OPT checkpoint, keys verbatim (CodingKeys), with the defaults
// transformers' OPTConfig uses. Validation throws EngineError.invalidConfig naming the file and key.
import Foundation

public struct OPTConfig: Codable, Sendable, Equatable {
    var modelType: String
    public var vocabSize: Int
    public var hiddenSize: Int  // C
    public var ffnDim: Int  // F
    public var numHiddenLayers: Int  // L
    public var numAttentionHeads: Int  // NH
    public var maxPositionEmbeddings: Int  // positions; the table has +2 rows (OPT's offset)
    public var wordEmbedProjDim: Int  // E (opt-350m: 512 with project_in/out)
    public var doLayerNormBefore: Bool  // pre-LN; false = post-LN (opt-350m)
    var activationFunction: String  // "relu" for every published OPT
    var enableBias: Bool
    var layerNormElementwiseAffine: Bool
    var removeFinalLayerNorm: Bool
    public var padTokenId: Int
    public var bosTokenId: Int
    public var eosTokenId: Int
    /// The residual dropout transformers applies in train mode (config.json "dropout", default 0.1).
    public var dropout: Double

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case ffnDim = "ffn_dim"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case wordEmbedProjDim = "word_embed_proj_dim"
        case doLayerNormBefore = "do_layer_norm_before"
        case activationFunction = "activation_function"
        case enableBias = "enable_bias"
        case layerNormElementwiseAffine = "layer_norm_elementwise_affine"
        case removeFinalLayerNorm = "_remove_final_layer_norm"
        case padTokenId = "pad_token_id"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case dropout
    }

    public init(
        vocabSize: Int = 50272, hiddenSize: Int, ffnDim: Int, numHiddenLayers: Int, numAttentionHeads: Int,
        maxPositionEmbeddings: Int = 2048, wordEmbedProjDim: Int? = nil, doLayerNormBefore: Bool = true,
        activationFunction: String = "relu", enableBias: Bool = true, layerNormElementwiseAffine: Bool = true,
        removeFinalLayerNorm: Bool = false, padTokenId: Int = 1, bosTokenId: Int = 2, eosTokenId: Int = 2
    ) {
        self.modelType = "opt"
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.ffnDim = ffnDim
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.wordEmbedProjDim = wordEmbedProjDim ?? hiddenSize
        self.doLayerNormBefore = doLayerNormBefore
        self.activationFunction = activationFunction
        self.enableBias = enableBias
        self.layerNormElementwiseAffine = layerNormElementwiseAffine
        self.removeFinalLayerNorm = removeFinalLayerNorm
        self.padTokenId = padTokenId
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.dropout = 0.1
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "opt"
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? 50272
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        ffnDim = try c.decode(Int.self, forKey: .ffnDim)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        wordEmbedProjDim = try c.decodeIfPresent(Int.self, forKey: .wordEmbedProjDim) ?? hiddenSize
        doLayerNormBefore = try c.decodeIfPresent(Bool.self, forKey: .doLayerNormBefore) ?? true
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? "relu"
        enableBias = try c.decodeIfPresent(Bool.self, forKey: .enableBias) ?? true
        layerNormElementwiseAffine = try c.decodeIfPresent(Bool.self, forKey: .layerNormElementwiseAffine) ?? true
        removeFinalLayerNorm = try c.decodeIfPresent(Bool.self, forKey: .removeFinalLayerNorm) ?? false
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? 1
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId) ?? 2
        eosTokenId = try c.decodeIfPresent(Int.self, forKey: .eosTokenId) ?? 2
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? 0.1
    }

    /// Reads and validates `directory/config.json`.
    public static func load(directory: String) throws -> OPTConfig {
        try FileAccess.requireDirectory(directory)
        let path = (directory as NSString).appendingPathComponent("config.json")
        let data = try FileAccess.readFile(path, limit: 1 << 20)
        let config: OPTConfig
        do {
            config = try JSONDecoder().decode(OPTConfig.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw EngineError.invalidConfig(path: path, reason: "missing key '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw EngineError.invalidConfig(path: path, reason: "key '\(key)' has the wrong type")
        } catch {
            throw EngineError.invalidConfig(path: path, reason: "not valid JSON")
        }
        try config.validate(path: path)
        return config
    }

    public func validate(path: String = "config.json") throws {
        func bad(_ reason: String) -> EngineError { .invalidConfig(path: path, reason: reason) }
        guard modelType == "opt" else {
            throw bad("model_type is '\(modelType)'; muwa runs OPT models only (model_type \"opt\")")
        }
        for (name, value) in [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("ffn_dim", ffnDim),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("max_position_embeddings", maxPositionEmbeddings),
            ("word_embed_proj_dim", wordEmbedProjDim),
        ] where value <= 0 || value > 1 << 24 {
            throw bad("\(name) is \(value), expected a positive number")
        }
        guard dropout.isFinite, (0..<1).contains(dropout) else {
            throw bad("dropout is \(dropout), expected 0 ≤ dropout < 1")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw bad("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard Activation(name: activationFunction) != nil else {
            throw bad("activation_function '\(activationFunction)' is not supported (relu, gelu, gelu_new)")
        }
        for (name, id) in [("pad_token_id", padTokenId), ("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId)]
        where id < 0 || id >= vocabSize {
            throw bad("\(name) \(id) is outside the vocabulary of \(vocabSize)")
        }
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
    /// True when the decoder ends in a final layer norm (pre-LN models, unless removed).
    public var hasFinalLayerNorm: Bool { doLayerNormBefore && !removeFinalLayerNorm }
    /// Unique parameters of OPTForCausalLM of this shape (lm_head tied to embed_tokens).
    /// Saturating: a hostile config gives Int.max, never a wrapped number or a trap.
    public var parameterCount: Int {
        let C = hiddenSize, F = ffnDim, E = wordEmbedProjDim, b = enableBias ? 1 : 0
        func sum(_ terms: Int...) -> Int { terms.reduce(0, saturatingSum) }
        func product(_ factors: Int...) -> Int { factors.reduce(1, saturatingProduct) }
        let ln = layerNormElementwiseAffine ? product(2, C) : 0
        let layer = sum(
            product(4, sum(product(C, C), product(b, C))), product(C, F), product(b, F), product(F, C),
            product(b, C), product(2, ln))
        return sum(
            product(vocabSize, E), product(sum(maxPositionEmbeddings, optPositionOffset), C),
            hasProjections ? product(2, C, E) : 0, hasFinalLayerNorm ? ln : 0, product(numHiddenLayers, layer))
    }

    /// True for opt-350m-style models whose embeddings are narrower than the hidden size.
    public var hasProjections: Bool { wordEmbedProjDim != hiddenSize }
}
