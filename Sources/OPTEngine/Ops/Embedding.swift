// Embeddings: token rows gathered from wte (any dtype, widened on the fly) and OPT's learned
// positions, whose table has two extra leading rows: position p reads row p + 2, padding reads row 1.
//   tokens: (N)   wte: (V, E)   out: (N, E)        positions: (N)   wpe: (P + 2, C)   out: (N, C)

let optPositionOffset = 2

/// out[i] = wte[tokens[i]]
public func embeddingForward(
    out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>, table: Tensor, N: Int, E: Int
) {
    parallelRows(N, width: E) { rows in
        for i in rows { table.convertToFloat(start: Int(tokens[i]) * E, count: E, into: out + i * E) }
    }
}

/// out[i] += wpe[positions[i] + 2]; `positions` holds mask-derived positions, -1 for padding.
public func positionEmbeddingAdd(
    out: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, table: Tensor,
    scratch: UnsafeMutablePointer<Float>, N: Int, C: Int
) {
    for i in 0..<N {
        table.convertToFloat(start: (Int(positions[i]) + optPositionOffset) * C, count: C, into: scratch)
        let o = out + i * C
        for c in 0..<C { o[c] += scratch[c] }
    }
}

/// Backward of the token gather: dtable[tokens[i]] += dout[i]  (dtable is F32, (V, E)).
func embeddingBackward(
    dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, N: Int, E: Int
) {
    for i in 0..<N {
        let d = dtable + Int(tokens[i]) * E, g = dout + i * E
        for e in 0..<E { d[e] += g[e] }
    }
}

/// Positions as transformers computes them: cumsum(mask) · mask − 1 over the whole row (past included).
/// mask: (B, S) of 0/1;  out: (B, S).
func positionsFromMask(_ mask: [[Int]]) -> [[Int32]] {
    mask.map { row in
        var run: Int32 = 0
        return row.map { m in
            if m != 0 { run += 1; return run - 1 }
            return -1
        }
    }
}
