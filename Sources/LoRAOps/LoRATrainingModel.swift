// LoRATrainingModel: OPT's forward pass for training, caching what the backward pass needs, and the
// backward pass down to the LoRA matrices (llm.c's gpt2_forward / gpt2_backward). The base model is
// frozen: no gradient is formed for any base weight, but every op passes dinp back so the adapters of
// lower layers get theirs. fp32 throughout. A micro-batch is packed (TrainingActivations.load): every
// op runs on its R real tokens only, attention per sequence (PackedAttention.swift), so padding costs
// nothing; dropout masks are drawn by padded element index, as before packing.
//   forward:  x0 = wpe[pos] + project_in(wte[tokens]) → L decoder layers → final_layer_norm → project_out
//             → hidden (R, E) → logits (R, V) = hidden · lm_headᵀ → cross-entropy on the shifted labels
//   backward: the same calls in reverse; the head is fused (logits are formed `headRows` rows at a time,
//             only for rows with a target, and turned into dhidden at once — the (R, V) logits never exist)
import OPTEngine

public final class LoRATrainingModel: @unchecked Sendable {
    public let model: OPTModel
    public let layout: LoRALayout
    /// nn.Dropout on the input of every LoRA A (peft's lora_dropout).
    public let loraDropout: Float
    /// OPT's own dropout after self-attention and after fc2 (config.dropout in train mode); 0 = off.
    public let residualDropout: Float
    public let checkpointing: Bool
    public let seed: UInt64
    let acts: TrainingActivations
    let kernelScratch: KernelScratch
    /// Per slot index: the column offset of its u in the layer's loraU buffer.
    let uColumn: [Int]
    let lowestAdaptedLayer: Int

    /// `headRows`: rows of the head's blocks of logits (nil: TrainingActivations.headRows; tests set fewer).
    public init(
        model: OPTModel, layout: LoRALayout, maxBatch: Int, maxLength: Int, loraDropout: Float = 0,
        residualDropout: Float = 0, checkpointing: Bool = false, keepBudget: Int? = nil, seed: UInt64 = 0,
        headRows: Int? = nil
    ) throws {
        let cfg = model.config
        guard maxBatch >= 1, maxLength >= 1, maxLength <= cfg.maxPositionEmbeddings else {
            throw LoRAError.invalidTraining(
                "batch \(maxBatch) × max_length \(maxLength) does not fit the model's "
                    + "\(cfg.maxPositionEmbeddings) positions")
        }
        guard !layout.slots.isEmpty else { throw LoRAError.invalidTraining("the adapter adapts no projection") }
        guard (0..<1).contains(loraDropout), (0..<1).contains(residualDropout) else {
            throw LoRAError.invalidTraining("dropout must be in [0, 1)")
        }
        self.model = model
        self.layout = layout
        self.loraDropout = loraDropout
        self.residualDropout = residualDropout
        self.checkpointing = checkpointing
        self.seed = seed
        let planned = TrainingActivations.plannedBytes(
            config: cfg, layout: layout, maxB: maxBatch, maxT: maxLength, checkpointing: checkpointing,
            headRows: headRows ?? TrainingActivations.headRows)
        let (total, overflow) = model.weightBytes.addingReportingOverflow(planned)
        try model.memoryBudget.check(
            overflow ? .max : total,
            for:
                "LoRA training on \(model.directory ?? "the model") (weights \(MemoryBudget.format(model.weightBytes)) + "
                + "activations \(MemoryBudget.format(planned)) for batch \(maxBatch) × max_length \(maxLength)"
                + (checkpointing ? ")" : "; gradient_checkpointing true needs less)"))
        let lowest = layout.slots.map(\.layer).min() ?? 0
        acts = TrainingActivations(
            config: cfg, layout: layout, maxB: maxBatch, maxT: maxLength,
            checkpointing: checkpointing, keepBudget: keepBudget ?? Self.keepBudget(model: model),
            lowestLayer: lowest, headRows: headRows ?? TrainingActivations.headRows)
        kernelScratch = KernelScratch(maxInputDim: max(cfg.hiddenSize, cfg.ffnDim, cfg.wordEmbedProjDim))
        var columns: [Int] = [], running: [Int: Int] = [:]
        for s in layout.slots {
            columns.append(running[s.layer, default: 0])
            running[s.layer, default: 0] += s.r
        }
        uColumn = columns
        lowestAdaptedLayer = lowest
    }

    /// With checkpointing, the bytes the keep arena is sized from: the model's memory budget (physical memory
    /// where it has none) less its weights.
    static func keepBudget(model: OPTModel) -> Int {
        var limit = model.memoryBudget.bytes
        if limit == .max { limit = MemoryBudget.physicalMemory() ?? 0 }
        return max(0, limit - model.weightBytes)
    }

    /// With checkpointing: how many layers the last micro-batch's backward pass recomputes (the others kept
    /// their forward activations in the keep arena, or, the top one, in the shared set).
    public private(set) var lastRecomputedLayers = 0

    /// With checkpointing: bytes reserved for kept layers (touched only as far as micro-batches use them).
    public var keepArenaBytes: Int { acts.keepArenaFloats * 4 }

    /// Bytes of activation and scratch buffers (beyond the model's weights).
    public var activationBytes: Int { acts.byteCount }

    /// Forward and backward over one micro-batch. Gradients are *added* to `grads` (zero it between
    /// optimizer steps). Each target's loss is weighted by `lossScale` in the gradient (1/count for a
    /// mean). `microStep` picks the dropout masks. Returns the sum of the token losses.
    public func forwardBackward(
        _ batch: TrainingBatch, params: FloatArena, grads: FloatArena, lossScale: Float,
        microStep: UInt64
    ) -> Double {
        precondition(params.count == layout.count && grads.count == layout.count, "arena does not fit the layout")
        let pass = Pass(self, batch: batch, params: params, grads: grads, microStep: microStep)
        forward(pass)
        let loss = head(pass, backward: true, lossScale: lossScale)
        backward(pass)
        return loss
    }

    /// The summed token loss of one batch, without a backward pass (evaluation, gradient checks).
    public func loss(_ batch: TrainingBatch, params: FloatArena, microStep: UInt64 = 0) -> Double {
        let pass = Pass(self, batch: batch, params: params, grads: nil, microStep: microStep)
        forward(pass)
        return head(pass, backward: false, lossScale: 0)
    }

    /// The state of one pass: batch shape (B sequences padded to T; R real tokens, packed) and the arenas
    /// it reads and writes.
    struct Pass {
        let B: Int, T: Int, R: Int
        let sequences: PackedSequences
        let params: FloatArena
        let grads: FloatArena?
        let microStep: UInt64

        init(_ m: LoRATrainingModel, batch: TrainingBatch, params: FloatArena, grads: FloatArena?, microStep: UInt64) {
            m.acts.load(batch)
            if m.checkpointing {
                let kept = m.acts.keepLayers(from: m.lowestAdaptedLayer)
                m.lastRecomputedLayers = max(0, m.model.config.numHiddenLayers - 1 - m.lowestAdaptedLayer - kept)
            }
            B = batch.B; T = batch.T; R = m.acts.rows
            sequences = m.acts.sequences
            self.params = params
            self.grads = grads
            self.microStep = microStep
        }
    }

    // MARK: - forward

    func forward(_ p: Pass) {
        let cfg = model.config, w = model.weights, a = acts
        let R = p.R, C = cfg.hiddenSize, E = cfg.wordEmbedProjDim
        let x0 = a.layerInputs[0]
        if let projectIn = w.projectIn {
            embeddingForward(out: a.emb, tokens: a.tokens, table: w.embedTokens, N: R, E: E)
            matmul(out: x0, inp: a.emb, weight: projectIn, bias: nil, M: R, K: E, N: C, scratch: kernelScratch)
        } else {
            embeddingForward(out: x0, tokens: a.tokens, table: w.embedTokens, N: R, E: C)
        }
        positionEmbeddingAdd(out: x0, positions: a.positions, table: w.embedPositions, scratch: a.tmp, N: R, C: C)
        for l in 0..<cfg.numHiddenLayers {
            layerForward(l, p, inp: a.layerInputs[l], out: a.layerInputs[l + 1])
        }
        let x = a.layerInputs[cfg.numHiddenLayers]
        var xf = UnsafePointer(x)
        if let ln = w.lnFinal {
            layerNormForward(
                out: a.xf, mean: a.lnfMean, rstd: a.lnfRstd, inp: x, weight: ln.weight?.floats,
                bias: ln.bias?.floats, N: R, C: C)
            xf = UnsafePointer(a.xf)
        }
        if let projectOut = w.projectOut {
            matmul(out: a.hidden, inp: xf, weight: projectOut, bias: nil, M: R, K: C, N: E, scratch: kernelScratch)
        } else {
            a.hidden.update(from: xf, count: R * C)
        }
    }

    /// Cross-entropy over the rows that have a target, `headRows` at a time; with `backward`, also
    /// dhidden (R, E) = Σ dlogits · lm_head (dlogits in the logits' buffer). Returns the summed loss.
    func head(_ p: Pass, backward: Bool, lossScale: Float) -> Double {
        let a = acts, E = model.config.wordEmbedProjDim, V = model.config.vocabSize, H = acts.headCapacity
        if backward { TrainingLoops.zero(a.dhidden, count: p.R * E) }
        var rows: [Int] = []
        rows.reserveCapacity(H)
        var total = 0.0
        func flush() {
            let n = rows.count
            guard n > 0 else { return }
            for (i, r) in rows.enumerated() {
                (a.headHidden + i * E).update(from: a.hidden + r * E, count: E)
                a.headTargets[i] = a.targets[r]
            }
            matmul(
                out: a.logits, inp: a.headHidden, weight: model.weights.lmHead, bias: nil, M: n, K: E, N: V,
                scratch: kernelScratch)
            // rows are independent: split them over the engine's threads, 8 rows a chunk
            EngineThreads.forEachChunk(n, grain: 8) { range in
                let r0 = range.lowerBound, r1 = range.upperBound, m = r1 - r0
                let logits = a.logits + r0 * V, targets = a.headTargets + r0, losses = a.losses + r0
                if backward {
                    // logits → probabilities → their gradient, in place
                    crossEntropySoftmaxForward(
                        probs: logits, losses: losses, logits: logits, targets: targets,
                        N: m, V: V)
                    for i in r0..<r1 { a.dlosses[i] = lossScale }
                    crossEntropySoftmaxBackwardInPlace(
                        probs: logits, targets: targets, dlosses: a.dlosses + r0, N: m, V: V)
                } else {
                    crossEntropyForward(losses: losses, logits: logits, targets: targets, N: m, V: V)
                }
            }
            for i in 0..<n { total += Double(a.losses[i]) }
            if backward {
                linearBackwardInput(
                    dinp: a.headDHidden, dout: a.logits, weight: model.weights.lmHead, M: n, K: E, N: V,
                    scratch: kernelScratch, accumulate: false)
                rows.withUnsafeBufferPointer { rows in
                    parallelRows(n, width: E) { range in
                        for i in range {
                            let d = a.dhidden + rows[i] * E, s = a.headDHidden + i * E
                            for e in 0..<E { d[e] += s[e] }
                        }
                    }
                }
            }
            rows.removeAll(keepingCapacity: true)
        }
        for r in 0..<p.R where a.targets[r] >= 0 {
            rows.append(r)
            if rows.count == H { flush() }
        }
        flush()
        return total
    }

    // MARK: - backward

    func backward(_ p: Pass) {
        let cfg = model.config, w = model.weights, a = acts
        let R = p.R, C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, L = cfg.numHiddenLayers
        // final stage: dhidden → dxf → d(last layer output)
        var dxf = UnsafePointer(a.dhidden)
        if let projectOut = w.projectOut {
            linearBackwardInput(
                dinp: a.dxf, dout: a.dhidden, weight: projectOut, M: R, K: C, N: E, scratch: kernelScratch,
                accumulate: false)
            dxf = UnsafePointer(a.dxf)
        }
        var dOut = a.dResA, dInp = a.dResB
        if let ln = w.lnFinal {
            TrainingLoops.zero(dOut, count: R * C)
            layerNormBackward(
                dinp: dOut, dweight: nil, dbias: nil, dout: dxf, inp: a.layerInputs[L], weight: ln.weight?.floats,
                mean: a.lnfMean, rstd: a.lnfRstd, N: R, C: C)
        } else {
            TrainingLoops.copy(dOut, dxf, count: R * C)
        }
        // layers, top to bottom, down to the lowest one with an adapter
        for l in stride(from: L - 1, through: lowestAdaptedLayer, by: -1) {
            // the top layer's activations are still in the shared set: no recompute
            if checkpointing, l < L - 1, !a.kept[l] {
                layerForward(l, p, inp: a.layerInputs[l], out: a.recomputed, recompute: true)
            }
            layerBackward(l, p, inp: a.layerInputs[l], dOut: dOut, dInp: l > lowestAdaptedLayer ? dInp : nil)
            swap(&dOut, &dInp)
        }
    }
}
