// The loop the packed GEMMs share (MatmulBF16.swift's gemmBF16, Int8Backward.swift's integer product): the rows
// of A go in chunks of whole tiles whose packed form fits the buffer; the threads pack each chunk (ranges of
// tiles), then multiply it: ranges of whole column panels (so no two threads write the same output column),
// `claimColumns` at a time, handed to whichever thread is free. A static half each left one core waiting
// whenever the other lost time to the rest of the machine (a kernel thread, a page fault): in opt-1.3b int8
// training on 2 cores each thread slept about 6 % of the step at these joins (`perf sched timehist`).

/// For each chunk of rows [m0, m0 + rows): `pack(m0, rows, t0, t1)` for tiles [t0, t1) of the chunk, split over
/// `EngineThreads`, then `multiply(m0, rows, p0, p1)` for the columns [0, columns) in ranges of
/// `claimGrain(columns:block:natural: claimColumns, rangesPerThread:)` claimed by the threads as they come free;
/// a column is multiplied once, by one thread, and its result does not depend on which. `capacity` and `perTile`
/// count the same packed elements; a chunk holds at least one tile.
func forEachPackedChunk(
    M: Int, tileRows: Int, perTile: Int, capacity: Int, columns: Int, columnBlock: Int, claimColumns: Int,
    rangesPerThread: Int = 4,
    pack: (_ m0: Int, _ rows: Int, _ t0: Int, _ t1: Int) -> Void,
    multiply: (_ m0: Int, _ rows: Int, _ p0: Int, _ p1: Int) -> Void
) {
    let chunkRows = packedChunkRows(tileRows: tileRows, perTile: perTile, capacity: capacity)
    let claim = claimGrain(
        columns: columns, block: columnBlock, natural: claimColumns, rangesPerThread: rangesPerThread)
    var m0 = 0
    while m0 < M {
        let rows = min(chunkRows, M - m0)
        let tiles = (rows + tileRows - 1) / tileRows
        let tileParts = max(1, min(EngineThreads.count, tiles))
        EngineThreads.run(parts: tileParts) { part in
            pack(m0, rows, tiles * part / tileParts, tiles * (part + 1) / tileParts)
        }
        EngineThreads.forEachClaimedChunk(columns, grain: claim) { range in
            multiply(m0, rows, range.lowerBound, range.upperBound)
        }
        m0 += rows
    }
}

/// Columns a thread claims at a time: the kernel's `natural` block (rounded up to whole `block`s), or less, down to
/// one block, so that every thread can take about `rangesPerThread` ranges (an opt-125m product of 768 columns in
/// blocks of 512 or 1024 left one thread the whole of it, or two thirds). A kernel with a cost per range (the FMA
/// bf16 GEMM widens each A tile once per range) asks for fewer.
func claimGrain(columns: Int, block: Int, natural: Int, rangesPerThread: Int = 4) -> Int {
    let block = max(1, block), natural = max(1, (natural + block - 1) / block) * block
    let fair = columns / (max(1, rangesPerThread) * max(1, EngineThreads.count)) / block * block
    return max(block, min(natural, fair))
}

/// Rows per chunk of forEachPackedChunk for these sizes (a buffer sized for a whole chunk's side data).
func packedChunkRows(tileRows: Int, perTile: Int, capacity: Int) -> Int {
    max(1, capacity / max(perTile, 1)) * tileRows
}
