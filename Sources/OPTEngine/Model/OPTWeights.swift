// OPTWeights: the checkpoint's tensors bound to named slots, shapes checked against the config.
// Matrices stay in their stored dtype (memory-mapped where possible); biases and layer-norm
// parameters, which are tiny, are widened to F32 once. HF names are kept verbatim here and nowhere
// else: `model.decoder.layers.N.self_attn.q_proj.weight` (transformers) or `decoder.…` (hub).

/// One linear layer: weight (out, in) in any dtype; bias (out) F32 or nil.
public struct LinearWeights: @unchecked Sendable {
    public var weight: Tensor
    public var bias: Tensor?
    public var outFeatures: Int { weight.shape[0] }
    public var inFeatures: Int { weight.shape[1] }
}

/// LayerNorm parameters (C), F32; nil when the config has no elementwise affine.
public struct LayerNormWeights: @unchecked Sendable {
    public var weight: Tensor?
    public var bias: Tensor?
}

public struct OPTLayerWeights: @unchecked Sendable {
    public var qProj, kProj, vProj, outProj: LinearWeights  // (C, C)
    public var lnAttn: LayerNormWeights  // self_attn_layer_norm (C)
    public var fc1: LinearWeights  // (F, C)
    public var fc2: LinearWeights  // (C, F)
    public var lnFfn: LayerNormWeights  // final_layer_norm of the layer (C)
}

public struct OPTWeights: @unchecked Sendable {
    public var embedTokens: Tensor  // (V, E)
    public var embedPositions: Tensor  // (P + 2, C)
    public var projectIn: Tensor?  // (C, E), no bias
    public var projectOut: Tensor?  // (E, C), no bias
    public var lnFinal: LayerNormWeights?  // decoder.final_layer_norm (C), pre-LN models only
    public var layers: [OPTLayerWeights]
    public var lmHead: Tensor  // (V, E); embed_tokens when tied

    /// Binds `checkpoint`'s tensors, checking every shape against `config`.
    public init(checkpoint ckpt: CheckpointTensors, config cfg: OPTConfig) throws {
        let prefix = try OPTWeights.detectPrefix(ckpt)
        let C = cfg.hiddenSize, F = cfg.ffnDim, E = cfg.wordEmbedProjDim, V = cfg.vocabSize

        func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
            let key = prefix + name
            guard let t = ckpt.tensors[key] else {
                throw EngineError.missingTensor(name: key, file: ckpt.describe(key))
            }
            guard t.shape == shape else {
                throw EngineError.shapeMismatch(name: key, file: ckpt.describe(key), expected: shape, found: t.shape)
            }
            guard [.f32, .f16, .bf16].contains(t.dtype) else {
                throw EngineError.unsupportedDType(name: key, file: ckpt.describe(key), dtype: t.dtype.rawValue)
            }
            return t
        }
        func small(_ name: String, _ n: Int) throws -> Tensor { try tensor(name, [n]).toF32() }
        func linear(_ name: String, out: Int, inp: Int) throws -> LinearWeights {
            LinearWeights(
                weight: try tensor(name + ".weight", [out, inp]),
                bias: cfg.enableBias ? try small(name + ".bias", out) : nil)
        }
        func layerNorm(_ name: String) throws -> LayerNormWeights {
            guard cfg.layerNormElementwiseAffine else { return LayerNormWeights(weight: nil, bias: nil) }
            return LayerNormWeights(
                weight: try small(name + ".weight", C),
                bias: cfg.enableBias || ckpt.tensors[prefix + name + ".bias"] != nil
                    ? try small(name + ".bias", C) : nil)
        }

        embedTokens = try tensor("embed_tokens.weight", [V, E])
        embedPositions = try tensor("embed_positions.weight", [cfg.maxPositionEmbeddings + optPositionOffset, C])
        projectIn = cfg.hasProjections ? try tensor("project_in.weight", [C, E]) : nil
        projectOut = cfg.hasProjections ? try tensor("project_out.weight", [E, C]) : nil
        lnFinal = cfg.hasFinalLayerNorm ? try layerNorm("final_layer_norm") : nil
        layers = try (0..<cfg.numHiddenLayers).map { l in
            let p = "layers.\(l)."
            return OPTLayerWeights(
                qProj: try linear(p + "self_attn.q_proj", out: C, inp: C),
                kProj: try linear(p + "self_attn.k_proj", out: C, inp: C),
                vProj: try linear(p + "self_attn.v_proj", out: C, inp: C),
                outProj: try linear(p + "self_attn.out_proj", out: C, inp: C),
                lnAttn: try layerNorm(p + "self_attn_layer_norm"),
                fc1: try linear(p + "fc1", out: F, inp: C),
                fc2: try linear(p + "fc2", out: C, inp: F),
                lnFfn: try layerNorm(p + "final_layer_norm"))
        }
        if let head = ckpt.tensors["lm_head.weight"] {
            guard head.shape == [V, E] else {
                throw EngineError.shapeMismatch(
                    name: "lm_head.weight", file: ckpt.describe("lm_head.weight"),
                    expected: [V, E], found: head.shape)
            }
            lmHead = head
        } else {
            lmHead = embedTokens
        }
    }

    /// "model.decoder." (transformers' OPTForCausalLM) or "decoder." (hub OPTModel saves).
    static func detectPrefix(_ ckpt: CheckpointTensors) throws -> String {
        for prefix in ["model.decoder.", "decoder.", "model.model.decoder."]
        where ckpt.tensors[prefix + "embed_tokens.weight"] != nil {
            return prefix
        }
        throw EngineError.missingTensor(
            name: "model.decoder.embed_tokens.weight (or decoder.embed_tokens.weight)",
            file: ckpt.directory)
    }
}

extension CheckpointTensors {
    /// The file a tensor came from, or the directory when it is absent.
    func describe(_ name: String) -> String { files[name] ?? directory }
}

extension OPTLayerWeights {
    /// The projection `module` of this layer.
    public func linear(_ module: ProjectionModule) -> LinearWeights {
        switch module {
        case .qProj: return qProj
        case .kProj: return kProj
        case .vProj: return vProj
        case .outProj: return outProj
        case .fc1: return fc1
        case .fc2: return fc2
        }
    }

    /// Replaces the projection `module` of this layer.
    public mutating func setLinear(_ module: ProjectionModule, _ value: LinearWeights) {
        switch module {
        case .qProj: qProj = value
        case .kProj: kProj = value
        case .vProj: vProj = value
        case .outProj: outProj = value
        case .fc1: fc1 = value
        case .fc2: fc2 = value
        }
    }
}
