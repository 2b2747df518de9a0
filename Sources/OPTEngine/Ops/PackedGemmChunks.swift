// The loop the packed GEMMs share (MatmulBF16.swift's gemmBF16, Int8Backward.swift's int16 product): the rows of
// A go in chunks of whole tiles whose packed form fits the buffer; the threads pack each chunk (ranges of
// tiles), then multiply it (ranges of whole column panels, so no two threads write the same output column).

/// For each chunk of rows [m0, m0 + rows): `pack(m0, rows, t0, t1)` for tiles [t0, t1) of the chunk, split over
/// `EngineThreads`, then `multiply(m0, rows, p0, p1)` for columns [p0, p1) of [0, columns), split over them in
/// multiples of `columnBlock`. `capacity` and `perTile` count the same packed elements; a chunk holds at least
/// one tile.
func forEachPackedChunk(
    M: Int, tileRows: Int, perTile: Int, capacity: Int, columns: Int, columnBlock: Int,
    pack: (_ m0: Int, _ rows: Int, _ t0: Int, _ t1: Int) -> Void,
    multiply: (_ m0: Int, _ rows: Int, _ p0: Int, _ p1: Int) -> Void
) {
    let chunkRows = packedChunkRows(tileRows: tileRows, perTile: perTile, capacity: capacity)
    let panels = (columns + columnBlock - 1) / columnBlock
    let parts = max(1, min(EngineThreads.count, panels))
    var m0 = 0
    while m0 < M {
        let rows = min(chunkRows, M - m0)
        let tiles = (rows + tileRows - 1) / tileRows
        let tileParts = max(1, min(EngineThreads.count, tiles))
        EngineThreads.run(parts: tileParts) { part in
            pack(m0, rows, tiles * part / tileParts, tiles * (part + 1) / tileParts)
        }
        EngineThreads.run(parts: parts) { part in
            let p0 = min(columns, panels * part / parts * columnBlock)
            let p1 = min(columns, panels * (part + 1) / parts * columnBlock)
            multiply(m0, rows, p0, p1)
        }
        m0 += rows
    }
}

/// Rows per chunk of forEachPackedChunk for these sizes (a buffer sized for a whole chunk's side data).
func packedChunkRows(tileRows: Int, perTile: Int, capacity: Int) -> Int {
    max(1, capacity / max(perTile, 1)) * tileRows
}
