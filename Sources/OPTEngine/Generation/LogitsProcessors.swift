// Logits processors applied before sampling, with transformers' semantics.

/// RepetitionPenaltyLogitsProcessor: for every distinct token already in the sequence (prompt — BOS
/// and any padding included — and generated tokens), a positive logit is divided by the penalty and
/// a negative one multiplied by it.
struct RepetitionPenalty {
    let penalty: Float
    private var seen: [Bool]
    private var ids: [Int32]

    init(penalty: Float, vocabularySize V: Int) {
        self.penalty = penalty
        seen = [Bool](repeating: false, count: V)
        ids = []
        ids.reserveCapacity(1024)
    }

    mutating func reset() {
        for id in ids { seen[Int(id)] = false }
        ids.removeAll(keepingCapacity: true)
    }

    mutating func observe(_ id: Int) {
        guard id >= 0 && id < seen.count, !seen[id] else { return }
        seen[id] = true
        ids.append(Int32(id))
    }

    func apply(_ logits: UnsafeMutablePointer<Float>) {
        guard penalty != 1 else { return }
        for id in ids {
            let v = logits[Int(id)]
            logits[Int(id)] = v < 0 ? v * penalty : v / penalty
        }
    }
}
