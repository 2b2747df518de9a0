// MemoryEstimate: what a model's weights and an InferenceSession's buffers take, computed from the
// config with saturating arithmetic (a hostile config yields Int.max, never a wrapped small number),
// and the checks against the model's MemoryBudget made before anything is allocated.
//   session buffers (see InferenceSession): 7·R·C + 2·R·E + R·F activations, chunk·S scores, B·V (×2
//   in slot mode) + 16·V logits, B·S key mask; KV cache 2·L·B·S·C floats (slot mode: per open slot).
import Foundation

/// a·b, or Int.max when it overflows (inputs are non-negative).
@inline(__always) func saturatingProduct(_ a: Int, _ b: Int) -> Int {
    let (p, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? .max : p
}

/// a+b, or Int.max when it overflows (inputs are non-negative).
@inline(__always) func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (s, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : s
}

extension InferenceSession {
    /// Bytes a session of `batch` sequences (or slots) of `capacity` tokens allocates for `config`, KV
    /// cache included (slot mode: `openSlots` slots of `capacity` tokens). Saturates at Int.max.
    public static func estimatedBytes(
        config cfg: OPTConfig, batch: Int, capacity: Int, chunk: Int = 256, slotted: Bool = false, openSlots: Int = 1
    ) -> Int {
        let B = max(batch, 1), S = max(capacity, 1), chunk = max(1, min(chunk, S))
        let slotCapacity = slotted ? cfg.maxPositionEmbeddings : S
        let R = slotted ? max(B, chunk) : saturatingProduct(B, chunk)
        let C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim, V = cfg.vocabSize, L = cfg.numHiddenLayers
        var floats = saturatingProduct(R, saturatingSum(saturatingSum(saturatingProduct(7, C), saturatingProduct(2, E)), F))
        floats = saturatingSum(floats, saturatingProduct(chunk, slotCapacity))  // scores
        floats = saturatingSum(floats, saturatingProduct(saturatingSum(saturatingProduct(slotted ? 2 : 1, B), 16), V))
        let kvSequences = slotted ? max(openSlots, 0) : B
        let kv = saturatingProduct(saturatingProduct(saturatingProduct(2, L), kvSequences), saturatingProduct(S, C))
        floats = saturatingSum(floats, kv)
        let mask = slotted ? 1 : saturatingProduct(B, S)
        return saturatingSum(saturatingProduct(floats, 4), mask)
    }
}

extension OPTModel {
    /// Throws ``EngineError/overMemoryBudget(what:estimate:limit:)`` when the weights plus a session of
    /// `batch` sequences of `capacity` tokens (batch mode) exceed ``memoryBudget``.
    public func checkSessionMemory(batch: Int, capacity: Int, chunk: Int = 256) throws {
        let buffers = InferenceSession.estimatedBytes(config: config, batch: batch, capacity: capacity, chunk: chunk)
        try memoryBudget.check(saturatingSum(weightBytes, buffers), for: self.describe(
            "weights \(MemoryBudget.format(weightBytes)) + buffers \(MemoryBudget.format(buffers)) for "
                + "\(batch) × \(capacity) tokens"))
    }

    /// The check made at load: the weights plus what one sequence of the model's full length needs in
    /// a decode batch (slot mode: the chunk × positions scores buffer and one slot's KV cache).
    public func checkLoadMemory() throws {
        let buffers = InferenceSession.estimatedBytes(
            config: config, batch: 1, capacity: config.maxPositionEmbeddings, slotted: true, openSlots: 1)
        try memoryBudget.check(saturatingSum(weightBytes, buffers), for: self.describe(
            "weights \(MemoryBudget.format(weightBytes)) + buffers \(MemoryBudget.format(buffers)) for one "
                + "sequence of max_position_embeddings \(config.maxPositionEmbeddings)"))
    }

    private func describe(_ detail: String) -> String {
        "model\(directory.map { " " + $0 } ?? "") (\(detail))"
    }
}

extension OPTWeights {
    /// Bytes of every tensor the model uses (mapped or copied), lm_head counted once when tied.
    public var byteCount: Int {
        var tensors: [Tensor] = [embedTokens, embedPositions]
        tensors += [projectIn, projectOut, lnFinal?.weight, lnFinal?.bias].compactMap { $0 }
        for l in layers {
            for lw in [l.qProj, l.kProj, l.vProj, l.outProj, l.fc1, l.fc2] { tensors += [lw.weight] + [lw.bias].compactMap { $0 } }
            tensors += [l.lnAttn.weight, l.lnAttn.bias, l.lnFfn.weight, l.lnFfn.bias].compactMap { $0 }
        }
        if lmHead.region !== embedTokens.region || lmHead.byteOffset != embedTokens.byteOffset { tensors.append(lmHead) }
        return tensors.reduce(0) { saturatingSum($0, $1.byteCount) }
    }
}
