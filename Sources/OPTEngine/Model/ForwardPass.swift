// ForwardPass: the activation buffers of one pass through the decoder, allocated once for at most R rows
// (R = sequences × new tokens per sequence), plus the seam through which the model reaches a KV cache.
// A session (BatchSession, SlotSession) owns a ForwardPass and a cache, writes the pass's token ids and
// positions, and calls OPTModel.forwardHidden(pass, attention: cache); the model never sees the session.
//   buffers: x, xn, q, k, v, att, tmp (R, C)   emb, hidden (R, E)   ffn (R, F)   scores (chunk, S)
//            tokens, positions (R)   R = rows · T of the pass being run

/// Attention of one layer over a KV cache, for the pass being run: appends the pass's new k, v rows to the
/// cache and writes `pass.att` (rows·T, C) from `pass.q` (already scaled), `pass.k`, `pass.v`.
/// Two caches implement it: KVCache (sequences sharing one length) and SlotKVCache (one length per slot).
protocol PassAttention: AnyObject {
    func attend(layer l: Int, pass: ForwardPass)
}

final class ForwardPass {
    /// Sequences in the pass being run, and new tokens per sequence.
    var rows = 0, T = 0
    /// Attention's prefill products in bf16 (the model computes in bf16); set by the session.
    var attentionInBF16 = false
    /// The most rows·T the buffers hold, and the positions `scores` has room for per query row.
    let maxRows: Int, scoreColumns: Int
    /// Floats `scores` holds: chunk × scoreColumns.
    let scoreFloats: Int
    let NH: Int, hs: Int
    let kernelScratch: KernelScratch
    let tokens: UnsafeMutablePointer<Int32>, positions: UnsafeMutablePointer<Int32>
    let x, xn, q, k, v, att, tmp, emb, hidden, ffn, scores: UnsafeMutablePointer<Float>
    private var allocations: [UnsafeMutableRawPointer] = []

    /// Buffers for up to `R` rows, with `chunk` × `S` attention scores.
    init(config cfg: OPTConfig, rows R: Int, chunk: Int, scoreColumns S: Int) {
        let R = max(R, 1)
        let C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim
        maxRows = R
        scoreColumns = max(S, 1)
        NH = cfg.numAttentionHeads
        hs = cfg.headDim
        kernelScratch = KernelScratch(maxInputDim: max(C, E, F))
        var allocs: [UnsafeMutableRawPointer] = []
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            allocs.append(UnsafeMutableRawPointer(p))
            return p
        }
        x = floats(R * C); xn = floats(R * C); q = floats(R * C); k = floats(R * C); v = floats(R * C)
        att = floats(R * C); tmp = floats(R * C); emb = floats(R * E); hidden = floats(R * E); ffn = floats(R * F)
        scoreFloats = max(chunk, 1) * scoreColumns
        scores = floats(scoreFloats)
        tokens = .allocate(capacity: R); tokens.initialize(repeating: 0, count: R)
        positions = .allocate(capacity: R); positions.initialize(repeating: 0, count: R)
        allocs += [UnsafeMutableRawPointer(tokens), UnsafeMutableRawPointer(positions)]
        allocations = allocs
    }

    deinit { for p in allocations { p.deallocate() } }

    /// Floats the buffers of `init(config:rows:chunk:scoreColumns:)` take (saturating).
    static func floatCount(config cfg: OPTConfig, rows R: Int, chunk: Int, scoreColumns S: Int) -> Int {
        let C = cfg.hiddenSize, E = cfg.wordEmbedProjDim, F = cfg.ffnDim
        let perRow = saturatingSum(saturatingSum(saturatingProduct(7, C), saturatingProduct(2, E)), F)
        return saturatingSum(saturatingProduct(R, perRow), saturatingProduct(chunk, S))
    }
}
