// OPTModel: the decoder as a per-layer call list (llm.c style). One model, loaded once, shared by
// every session; all per-request state lives in a session (BatchSession, SlotSession): its KV cache
// and its ForwardPass (activations). The model calls only what it is handed: the pass and the cache.
//   B batch, T new tokens, C hidden, E word_embed_proj_dim, F ffn, V vocab, NH heads, hs = C / NH
import Foundation

/// The projections inside an OPT layer that adapters can attach to (peft's module names).
public enum ProjectionModule: String, CaseIterable, Sendable {
    case qProj = "q_proj", kProj = "k_proj", vProj = "v_proj", outProj = "out_proj", fc1 = "fc1", fc2 = "fc2"
}

/// A seam for adapters: after each base projection the model offers `delta` the input and output
/// rows so it can add its low-rank term. Rows are grouped by sequence: batch b owns rows
/// [b·rowsPerSequence, (b+1)·rowsPerSequence).
public protocol ProjectionDelta: AnyObject {
    func addDelta(
        layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, inDim: Int,
        out: UnsafeMutablePointer<Float>, outDim: Int, batch: Int, rowsPerSequence: Int)
}

public final class OPTModel: @unchecked Sendable {
    public let config: OPTConfig
    public let weights: OPTWeights
    public let activation: Activation
    public let directory: String?
    /// What loading and sessions may use; sessions check against it before allocating.
    public let memoryBudget: MemoryBudget
    /// Bytes of the weights (``OPTWeights/byteCount``).
    public let weightBytes: Int
    /// How this model computes and keeps its weights (the weights are already prepared for it).
    public let options: EngineOptions

    public init(
        config: OPTConfig, weights: OPTWeights, directory: String? = nil,
        memoryBudget: MemoryBudget = .unlimited, options: EngineOptions = .exact
    ) throws {
        try config.validate()
        guard let act = Activation(name: config.activationFunction) else {
            throw EngineError.invalidConfig(path: "config.json", reason: "unsupported activation")
        }
        self.config = config
        self.weights = weights
        self.activation = act
        self.directory = directory
        self.memoryBudget = memoryBudget
        self.options = options
        self.weightBytes = weights.byteCount
    }

    /// Loads config.json and the weights of a Hugging Face OPT directory. Throws
    /// ``EngineError/overMemoryBudget(what:estimate:limit:)`` when the weights plus the buffers of one
    /// full-length sequence exceed `memoryBudget` (checked before any buffer is allocated).
    public static func load(
        directory: String, memoryBudget: MemoryBudget = .unlimited,
        options: EngineOptions = .exact
    ) throws -> OPTModel {
        let config = try OPTConfig.load(directory: directory)
        let checkpoint = try CheckpointReader.load(directory: directory)
        var weights = try OPTWeights(checkpoint: checkpoint, config: config)
        try weights.prepare(for: options)
        let model = try OPTModel(
            config: config, weights: weights, directory: directory, memoryBudget: memoryBudget,
            options: options)
        try model.checkLoadMemory()
        return model
    }

    /// Runs `pass.T` new tokens for each of the `pass.rows` sequences of the pass through the decoder, leaving
    /// the final hidden states (rows·T, E) in `pass.hidden`. Token ids and positions must already be in the
    /// pass's buffers; `attention` runs each layer's attention over its cache (and appends to it).
    func forwardHidden(_ s: ForwardPass, attention: PassAttention, delta: ProjectionDelta?) {
        let cfg = config, w = weights
        let B = s.rows, T = s.T, R = B * T, C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim
        // The sessions set rows and T within the buffers they sized (B·chunk, or max(slots, chunk)).
        assert(R <= s.maxRows, "a pass of \(R) rows exceeds its buffers of \(s.maxRows)")
        let x = s.x, h = s.xn, scratch = s.kernelScratch

        // embeddings: x (R, C) = project_in(wte[tokens]) + wpe[positions + 2]
        if let projectIn = w.projectIn {
            embeddingForward(out: s.emb, tokens: s.tokens, table: w.embedTokens, N: R, E: E)
            matmul(out: x, inp: s.emb, weight: projectIn, bias: nil, M: R, K: E, N: C, scratch: scratch)
        } else {
            embeddingForward(out: x, tokens: s.tokens, table: w.embedTokens, N: R, E: C)
        }
        positionEmbeddingAdd(out: x, positions: s.positions, table: w.embedPositions, scratch: s.tmp, N: R, C: C)

        func project(
            _ lw: LinearWeights, _ l: Int, _ m: ProjectionModule, out: UnsafeMutablePointer<Float>,
            inp: UnsafePointer<Float>, K: Int, N: Int
        ) {
            matmul(out: out, inp: inp, weight: lw.weight, bias: lw.bias?.floats, M: R, K: K, N: N, scratch: scratch)
            delta?.addDelta(layer: l, module: m, inp: inp, inDim: K, out: out, outDim: N, batch: B, rowsPerSequence: T)
        }
        func norm(_ ln: LayerNormWeights, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>) {
            layerNormForward(
                out: out, mean: nil, rstd: nil, inp: inp, weight: ln.weight?.floats,
                bias: ln.bias?.floats, N: R, C: C)
        }
        let preLN = cfg.doLayerNormBefore
        let scaling = 1 / Float(cfg.headDim).squareRoot()

        for (l, lw) in w.layers.enumerated() {
            // --- attention block: x = x + out_proj(attn(LN(x)))   (post-LN: LN after the add)
            if preLN { norm(lw.lnAttn, out: h, inp: x) } else { h.update(from: x, count: R * C) }
            // q, k, v of one input (int8 weights quantize and pack it once for the three)
            matmulSharingInput(
                [
                    SharedInputProjection(out: s.q, weight: lw.qProj.weight, bias: lw.qProj.bias?.floats, N: C),
                    SharedInputProjection(out: s.k, weight: lw.kProj.weight, bias: lw.kProj.bias?.floats, N: C),
                    SharedInputProjection(out: s.v, weight: lw.vProj.weight, bias: lw.vProj.bias?.floats, N: C),
                ], inp: h, M: R, K: C, scratch: scratch)
            if let delta {
                for m in [ProjectionModule.qProj, .kProj, .vProj] {
                    let out = m == .qProj ? s.q : m == .kProj ? s.k : s.v
                    delta.addDelta(
                        layer: l, module: m, inp: h, inDim: C, out: out, outDim: C, batch: B, rowsPerSequence: T)
                }
            }
            scale(s.q, by: scaling, count: R * C)
            attention.attend(layer: l, pass: s)
            project(lw.outProj, l, .outProj, out: s.tmp, inp: s.att, K: C, N: C)
            addInPlace(x, s.tmp, count: R * C)
            if !preLN { norm(lw.lnAttn, out: x, inp: x) }

            // --- feed-forward block: x = x + fc2(act(fc1(LN(x))))
            if preLN { norm(lw.lnFfn, out: h, inp: x) } else { h.update(from: x, count: R * C) }
            project(lw.fc1, l, .fc1, out: s.ffn, inp: h, K: C, N: F)
            activation.forward(s.ffn, count: R * F)
            project(lw.fc2, l, .fc2, out: s.tmp, inp: s.ffn, K: F, N: C)
            addInPlace(x, s.tmp, count: R * C)
            if !preLN { norm(lw.lnFfn, out: x, inp: x) }
        }

        // final norm and projection back to the embedding width: hidden (R, E)
        if let lnFinal = w.lnFinal { norm(lnFinal, out: x, inp: x) }
        if let projectOut = w.projectOut {
            matmul(out: s.hidden, inp: x, weight: projectOut, bias: nil, M: R, K: C, N: E, scratch: scratch)
        } else {
            s.hidden.update(from: x, count: R * C)
        }
    }

    /// logits (rows, V) = hidden (rows, E) · lm_headᵀ
    func logits(out: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, rows: Int, scratch: KernelScratch) {
        matmul(
            out: out, inp: hidden, weight: weights.lmHead, bias: nil, M: rows, K: config.wordEmbedProjDim,
            N: config.vocabSize, scratch: scratch)
    }
}
