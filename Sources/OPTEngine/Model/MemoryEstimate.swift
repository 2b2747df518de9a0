// MemoryEstimate: what a model's weights and a session's buffers take, computed from the config with
// saturating arithmetic (a hostile config yields Int.max, never a wrapped small number), and the checks
// against the model's MemoryBudget made before anything is allocated.
//   session buffers (BatchSession/SlotSession.estimatedBytes): ForwardPass 7·R·C + 2·R·E + R·F activations
//   and chunk·S scores; B·V + 16·V logits (slots: 2·B·V), B·S key mask; KV cache 2·L·B·S·C floats (slot
//   session: per open slot).
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

extension OPTModel {
    /// Throws ``EngineError/overMemoryBudget(what:estimate:limit:)`` when the weights plus a session of
    /// `batch` sequences of `capacity` tokens (batch mode) exceed ``memoryBudget``.
    func checkSessionMemory(batch: Int, capacity: Int, chunk: Int = 256) throws {
        let buffers = BatchSession.estimatedBytes(config: config, batch: batch, capacity: capacity, chunk: chunk)
        try memoryBudget.check(
            saturatingSum(weightBytes, buffers),
            for: self.describe(
                "weights \(MemoryBudget.format(weightBytes)) + buffers \(MemoryBudget.format(buffers)) for "
                    + "\(batch) × \(capacity) tokens"))
    }

    /// The check made at load: the weights plus what one sequence of the model's full length needs in
    /// a decode batch (slot mode: the chunk × positions scores buffer and one slot's KV cache).
    func checkLoadMemory() throws {
        let buffers = SlotSession.estimatedBytes(
            config: config, slots: 1, openSlots: 1,
            capacity: config.maxPositionEmbeddings)
        try memoryBudget.check(
            saturatingSum(weightBytes, buffers),
            for: self.describe(
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
            for lw in [l.qProj, l.kProj, l.vProj, l.outProj, l.fc1, l.fc2] {
                tensors += [lw.weight] + [lw.bias].compactMap { $0 }
            }
            tensors += [l.lnAttn.weight, l.lnAttn.bias, l.lnFfn.weight, l.lnFfn.bias].compactMap { $0 }
        }
        if lmHead.region !== embedTokens.region || lmHead.byteOffset != embedTokens.byteOffset {
            tensors.append(lmHead)
        }
        return tensors.reduce(0) { saturatingSum($0, $1.byteCount) }
    }
}
