// The buffers of LoRA training for batches of up to maxB × maxT tokens, allocated once when the
// trainer is made (llm.c's activations), never per step. With gradient checkpointing each layer's input
// is kept for the whole pass, plus one layer's worth of activations (the shared set) that the backward
// pass refills by recomputing a layer; without it every layer keeps its own set. Checkpointing also gets
// a keep arena, sized from the memory budget: for each micro-batch, `keepLayers` carves sets of that
// batch's own size (R rows, Σ NH·n² probabilities) from it for as many layers as fit, bottom first, and
// those layers are not recomputed — short micro-batches run at the speed of no checkpointing, long ones
// fall back to recomputing; the gradients are the same bits either way.
// A batch is packed: only its real tokens are loaded, sequence after sequence (rows offsets[s] ..<
// offsets[s + 1]), so every row-wise op works on R = Σ lengths rows and no FLOP is spent on padding.
// Buffers are sized for the worst case, R = maxB·maxT.
//   R rows (real tokens)   C hidden   E word_embed_proj_dim   F ffn   V vocab   NH heads   ΣR = Σ r of a layer's slots
import Foundation
import OPTEngine

/// What one decoder layer's backward pass reads (names follow the forward recipe in DecoderLayerPass).
struct LayerActivations {
    let attnIn: UnsafeMutablePointer<Float>  // (R, C) self_attn_layer_norm(inp); pre-LN only
    let ln1Mean, ln1Rstd: UnsafeMutablePointer<Float>  // (R) self_attn_layer_norm statistics
    let q, k, v: UnsafeMutablePointer<Float>  // (R, C) q already scaled by hs^-0.5
    let att: UnsafeMutablePointer<Float>  // Σ_s NH·n_s² attention probabilities (PackedAttention.swift)
    let attOut: UnsafeMutablePointer<Float>  // (R, C) input of out_proj
    let res1: UnsafeMutablePointer<Float>  // (R, C) inp + out_proj(attOut)
    let ffnIn: UnsafeMutablePointer<Float>  // (R, C) input of fc1 (and the FFN residual, post-LN)
    let ln2Mean, ln2Rstd: UnsafeMutablePointer<Float>  // (R) final_layer_norm statistics
    let fcPre: UnsafeMutablePointer<Float>  // (R, F) fc1 output before the activation
    let res2: UnsafeMutablePointer<Float>  // (R, C) ffnIn + fc2(…), post-LN only
    let loraU: UnsafeMutablePointer<Float>  // (R, ΣR) x·Aᵀ of each adapted projection of the layer
}

final class TrainingActivations {
    let maxB: Int, maxT: Int
    /// L + 1 buffers (R, C): the input of each layer; [L] is the last layer's output.
    let layerInputs: [UnsafeMutablePointer<Float>]
    /// One set per layer; when checkpointing, the shared set for every layer `keepLayers` did not keep.
    private(set) var layers: [LayerActivations]
    /// Checkpointing: per layer, true when the loaded batch's activations of that layer have a set of their
    /// own (kept from the forward pass for the backward: no recompute).
    private(set) var kept: [Bool]
    /// Checkpointing: the keep arena (floats).
    let keepArena: UnsafeMutablePointer<Float>?
    let keepArenaFloats: Int
    private let shared: LayerActivations?
    private let rankSums: [Int]
    private let dims: Dims
    // embeddings and final stage
    let emb: UnsafeMutablePointer<Float>  // (R, E) token rows before project_in
    let lnfMean, lnfRstd: UnsafeMutablePointer<Float>  // (R)
    let xf: UnsafeMutablePointer<Float>  // (R, C) final_layer_norm output
    let hidden, dhidden: UnsafeMutablePointer<Float>  // (R, E)
    let dxf: UnsafeMutablePointer<Float>  // (R, C)
    // shared scratch of the layer passes
    let fcAct, dFcAct, dFcPre: UnsafeMutablePointer<Float>  // (R, F)
    let tmp, recomputed: UnsafeMutablePointer<Float>  // (R, C)
    let drop, dDrop: UnsafeMutablePointer<Float>  // (R, max(C, F)) dropped LoRA input and its gradient
    let dResA, dResB, dRes: UnsafeMutablePointer<Float>  // (R, C) residual-stream gradients
    let dAttnIn, dq, dk, dv, dAttOut, dFfnIn: UnsafeMutablePointer<Float>  // (R, C)
    let attScratch: UnsafeMutablePointer<Float>  // attentionScratchParts × attentionScratchFloats
    let attentionScratchParts: Int
    let g: UnsafeMutablePointer<Float>  // (R, max r)
    // inputs of the current batch, packed
    let tokens, positions, targets: UnsafeMutablePointer<Int32>  // (R)
    /// Row r's index in the padded (B, T) layout, b·T + t: dropout masks are drawn by padded element index,
    /// so a token gets the same mask packed or padded.
    let paddedRow: UnsafeMutablePointer<Int>  // (R)
    let offsets: UnsafeMutablePointer<Int>  // (maxB + 1)
    /// Shape of the loaded batch: B sequences padded to T, `rows` real tokens.
    private(set) var B = 0, T = 0, rows = 0
    // lm head, in blocks of up to headRows rows that have a target (`headCapacity`: no more than a batch has).
    // Each block packs the whole lm_head for its products, so larger blocks pack it less often: opt-125m LoRA
    // train 4 × 256 on the int8 base, alternating binaries: 466 / 555 / 529 / 531 tok/s at 256 rows, 603 / 591 /
    // 575 / 482 at 1024 (logits 1024 × 50272 f32: 206 MB).
    static let headRows = 1024
    /// Rows of the head's buffers: min(headRows, maxB · maxT).
    let headCapacity: Int
    let headHidden, headDHidden: UnsafeMutablePointer<Float>  // (headCapacity, E)
    let logits: UnsafeMutablePointer<Float>  // (headCapacity, V): logits, then probabilities, then their gradient
    let headTargets: UnsafeMutablePointer<Int32>  // (headCapacity)
    let losses, dlosses: UnsafeMutablePointer<Float>  // (headCapacity)

    private var allocations: [UnsafeMutableRawPointer] = []
    /// Bytes held by every buffer above.
    private(set) var byteCount = 0

    /// `keepBudget` (checkpointing only): bytes the training may use beyond the model's weights; the keep arena
    /// gets half of what is left of it once the other buffers are allocated and the keep arenas of other
    /// trainings in this process are counted, at most what every layer below the top one needs at maxB × maxT.
    init(
        config cfg: OPTConfig, layout: LoRALayout, maxB: Int, maxT: Int, checkpointing: Bool,
        keepBudget: Int = 0, lowestLayer: Int = 0, headRows: Int = TrainingActivations.headRows
    ) {
        self.maxB = maxB
        self.maxT = maxT
        let R = maxB * maxT, C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim, V = cfg.vocabSize
        let NH = cfg.numAttentionHeads, L = cfg.numHiddenLayers, H = max(1, min(headRows, R))
        headCapacity = H
        var allocs: [UnsafeMutableRawPointer] = [], bytes = 0
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            allocs.append(UnsafeMutableRawPointer(p))
            bytes += max(n, 1) * 4
            return p
        }
        func ints(_ n: Int) -> UnsafeMutablePointer<Int32> {
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            allocs.append(UnsafeMutableRawPointer(p))
            bytes += max(n, 1) * 4
            return p
        }
        let preLN = cfg.doLayerNormBefore
        let dims = (C: C, F: F, NH: NH, preLN: preLN), maxAtt = maxB * NH * maxT * maxT
        func layerSet(rankSum: Int) -> LayerActivations {
            Self.layerSet(R: R, att: maxAtt, rankSum: rankSum, dims: dims, take: floats)
        }
        let rankSums = Self.rankSums(layout, layers: L)
        self.rankSums = rankSums
        self.dims = dims
        kept = [Bool](repeating: !checkpointing, count: L)
        layerInputs = (0...L).map { _ in floats(R * C) }
        if checkpointing {
            let shared = layerSet(rankSum: rankSums.max() ?? 0)
            self.shared = shared
            layers = [LayerActivations](repeating: shared, count: L)
        } else {
            shared = nil
            layers = rankSums.map { layerSet(rankSum: $0) }
        }
        emb = floats(cfg.hasProjections ? R * E : 0)
        lnfMean = floats(R); lnfRstd = floats(R); xf = floats(R * C)
        hidden = floats(R * E); dhidden = floats(R * E); dxf = floats(R * C)
        fcAct = floats(R * F); dFcAct = floats(R * F); dFcPre = floats(R * F)
        tmp = floats(R * C); recomputed = floats(checkpointing ? R * C : 0)
        drop = floats(R * max(C, F)); dDrop = floats(R * max(C, F))
        dResA = floats(R * C); dResB = floats(R * C); dRes = floats(R * C)
        dAttnIn = floats(R * C); dq = floats(R * C); dk = floats(R * C); dv = floats(R * C)
        dAttOut = floats(R * C); dFfnIn = floats(R * C)
        let hs = cfg.headDim
        attentionScratchParts = max(1, min(EngineThreads.count, maxB * NH))
        attScratch = floats(attentionScratchParts * attentionScratchFloats(maxLength: maxT, hs: hs))
        g = floats(R * max(layout.maxRank, 1))
        tokens = ints(R); positions = ints(R); targets = ints(R)
        func indices(_ n: Int) -> UnsafeMutablePointer<Int> {
            let p = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            allocs.append(UnsafeMutableRawPointer(p))
            bytes += max(n, 1) * MemoryLayout<Int>.stride
            return p
        }
        paddedRow = indices(R)
        offsets = indices(maxB + 1)
        headHidden = floats(H * E); headDHidden = floats(H * E)
        logits = floats(H * V)
        headTargets = ints(H); losses = floats(H); dlosses = floats(H)
        var arenaFloats = 0
        if checkpointing {
            var worst = 0  // every layer from lowestLayer to L - 2 at R rows of maxB sequences of maxT
            for l in max(lowestLayer, 0)..<max(L - 1, 0) {
                worst = saturatingAdd(worst, Self.layerFloats(R: R, att: maxAtt, rankSum: rankSums[l], dims: dims))
            }
            arenaFloats = KeepArenaLedger.reserve(upTo: worst, budget: keepBudget - bytes)
        }
        keepArenaFloats = arenaFloats
        if arenaFloats > 0 {  // not initialized: its pages are touched (and count) only as batches use them
            let arena = UnsafeMutablePointer<Float>.allocate(capacity: arenaFloats)
            allocs.append(UnsafeMutableRawPointer(arena))
            keepArena = arena
        } else {
            keepArena = nil
        }
        allocations = allocs
        byteCount = bytes  // the keep arena not included
    }

    /// Bytes `init` allocates for these settings (the keep arena aside), with saturating arithmetic (a hostile
    /// size yields Int.max): the trainer checks it against the model's memory budget before allocating.
    /// The same buffers as `init`, in its order (a test holds the two equal).
    static func plannedBytes(
        config cfg: OPTConfig, layout: LoRALayout, maxB: Int, maxT: Int, checkpointing: Bool,
        headRows: Int = TrainingActivations.headRows
    ) -> Int {
        let R = saturatingMultiply(maxB, maxT), C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim
        let V = cfg.vocabSize, NH = cfg.numAttentionHeads, L = cfg.numHiddenLayers, H = max(1, min(headRows, R))
        let dims = (C: C, F: F, NH: NH, preLN: cfg.doLayerNormBefore)
        let maxAtt = saturatingMultiply(saturatingMultiply(maxB, NH), saturatingMultiply(maxT, maxT))
        var total = 0
        func add(_ n: Int, _ size: Int = 4) { total = saturatingAdd(total, saturatingMultiply(max(n, 1), size)) }
        func rc(_ cols: Int) -> Int { saturatingMultiply(R, cols) }
        func layerSet(rankSum: Int) {
            _ = Self.layerSet(R: R, att: maxAtt, rankSum: rankSum, dims: dims) { n in
                add(n)
                return Self.countOnly
            }
        }
        let rankSums = Self.rankSums(layout, layers: L)
        for _ in 0...L { add(rc(C)) }
        if checkpointing { layerSet(rankSum: rankSums.max() ?? 0) } else { rankSums.forEach { layerSet(rankSum: $0) } }
        add(cfg.hasProjections ? rc(E) : 0)
        add(R); add(R); add(rc(C))
        add(rc(E)); add(rc(E)); add(rc(C))
        add(rc(F)); add(rc(F)); add(rc(F))
        add(rc(C)); add(checkpointing ? rc(C) : 0)
        add(rc(max(C, F))); add(rc(max(C, F)))
        for _ in 0..<9 { add(rc(C)) }  // dResA, dResB, dRes, dAttnIn, dq, dk, dv, dAttOut, dFfnIn
        let parts = max(1, min(EngineThreads.count, saturatingMultiply(maxB, NH)))
        add(saturatingMultiply(parts, attentionScratchFloats(maxLength: maxT, hs: cfg.headDim)))
        add(rc(max(layout.maxRank, 1)))
        add(R); add(R); add(R)  // tokens, positions, targets (Int32)
        add(R, MemoryLayout<Int>.stride); add(saturatingAdd(maxB, 1), MemoryLayout<Int>.stride)
        add(saturatingMultiply(H, E)); add(saturatingMultiply(H, E))
        add(saturatingMultiply(H, V))
        add(H); add(H); add(H)  // headTargets (Int32), losses, dlosses
        return total
    }

    typealias Dims = (C: Int, F: Int, NH: Int, preLN: Bool)

    /// One layer's activation set for R rows, `att` attention probabilities and `rankSum` LoRA columns, each
    /// buffer `take(floats)`: the one list of a set's buffers, which init allocates, keepLayers carves from the
    /// keep arena and plannedBytes / layerFloats count (sizes saturate, so counting a hostile size cannot trap).
    static func layerSet(
        R: Int, att: Int, rankSum: Int, dims d: Dims, take: (Int) -> UnsafeMutablePointer<Float>
    ) -> LayerActivations {
        let rc = saturatingMultiply(R, d.C)
        return LayerActivations(
            attnIn: take(d.preLN ? rc : 0), ln1Mean: take(R), ln1Rstd: take(R), q: take(rc), k: take(rc),
            v: take(rc), att: take(att), attOut: take(rc), res1: take(rc), ffnIn: take(rc), ln2Mean: take(R),
            ln2Rstd: take(R), fcPre: take(saturatingMultiply(R, d.F)), res2: take(d.preLN ? 0 : rc),
            loraU: take(saturatingMultiply(R, rankSum)))
    }

    /// What `take` returns when a set is only counted: never dereferenced.
    private static let countOnly = UnsafeMutablePointer<Float>(bitPattern: MemoryLayout<Float>.alignment)!

    /// Floats one layer's set takes from the keep arena (exactly what `layerSet` takes).
    static func layerFloats(R: Int, att: Int, rankSum: Int, dims: Dims) -> Int {
        var floats = 0
        _ = layerSet(R: R, att: att, rankSum: rankSum, dims: dims) { n in
            floats = saturatingAdd(floats, n)
            return countOnly
        }
        return floats
    }

    /// Per layer: the LoRA ranks of its adapted projections, summed (the columns of its loraU).
    static func rankSums(_ layout: LoRALayout, layers L: Int) -> [Int] {
        (0..<L).map { l in layout.slots.filter { $0.layer == l }.reduce(0) { $0 + $1.r } }
    }

    /// Checkpointing: for the loaded batch, gives layers lowest, lowest + 1, … (up to L − 2) sets of their own
    /// from the keep arena while they fit; the others (and the top layer, whose activations the shared set
    /// still holds when the backward pass starts) use the shared set. Returns how many layers were kept.
    @discardableResult
    func keepLayers(from lowest: Int) -> Int {
        guard let shared else { return layers.count }
        let L = layers.count, R = rows
        let att = sequences.attFloats(NH: dims.NH)
        var used = 0, count = 0
        for l in 0..<L {
            layers[l] = shared
            kept[l] = false
        }
        guard let arena = keepArena else { return 0 }
        for l in max(lowest, 0)..<max(L - 1, 0) {
            let need = Self.layerFloats(R: R, att: att, rankSum: rankSums[l], dims: dims)
            guard need <= keepArenaFloats - used else { break }
            var next = arena + used
            layers[l] = Self.layerSet(R: R, att: att, rankSum: rankSums[l], dims: dims) { n in
                defer { next += n }
                return next
            }
            kept[l] = true
            used += need
            count += 1
        }
        return count
    }

    deinit {
        for p in allocations { p.deallocate() }
        KeepArenaLedger.release(keepArenaFloats)
    }

    /// Packs a collated batch into the input buffers: the tokens whose key mask is 1, row by row (the
    /// padding a right-padded batch carries is dropped; it has no target and no real query sees it).
    func load(_ batch: TrainingBatch) {
        precondition(batch.B <= maxB && batch.T <= maxT, "batch larger than the trainer's buffers")
        var r = 0
        offsets[0] = 0
        for b in 0..<batch.B {
            for t in 0..<batch.T where batch.keyMask[b * batch.T + t] != 0 {
                let i = b * batch.T + t
                tokens[r] = batch.tokens[i]
                positions[r] = batch.positions[i]
                targets[r] = batch.targets[i]
                paddedRow[r] = i
                r += 1
            }
            offsets[b + 1] = r
        }
        B = batch.B
        T = batch.T
        rows = r
    }

    /// The loaded batch's sequences.
    var sequences: PackedSequences { PackedSequences(offsets: offsets, count: B) }
}

/// a·b and a+b for non-negative sizes, Int.max where they overflow.
private func saturatingMultiply(_ a: Int, _ b: Int) -> Int {
    let (p, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? .max : p
}

private func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (s, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : s
}

/// The keep arenas of every training in this process (a daemon may run fine-tunes side by side): a new arena
/// gets half of its budget less what the others already hold, so together they stay within one budget.
private enum KeepArenaLedger {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var heldFloats = 0

    /// Floats for a new arena: at most `worst`, at most half of `budget` bytes less the arenas held.
    static func reserve(upTo worst: Int, budget: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let floats = min(worst, max(0, budget / 4 - heldFloats) / 2)
        heldFloats += floats
        return floats
    }

    static func release(_ floats: Int) {
        lock.lock()
        defer { lock.unlock() }
        heldFloats -= floats
    }
}
