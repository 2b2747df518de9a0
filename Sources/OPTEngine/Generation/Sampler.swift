// Samplers: turn one row of logits (V) into a token id. Greedy is argmax; CategoricalSampler applies
// transformers' warpers in its order — temperature, then top-k, then top-p — and draws from the
// softmax with the sequence's own seeded RNG. Processors that edit logits before either sampler
// (repetition penalty) are in LogitsProcessors.swift.
import Foundation

protocol LogitSampler {
    /// Picks a token from `logits` (V values; the sampler may overwrite them).
    mutating func sample(logits: UnsafeMutablePointer<Float>, count V: Int) -> Int
}

public struct GreedySampler: LogitSampler {
    public init() {}

    public mutating func sample(logits: UnsafeMutablePointer<Float>, count V: Int) -> Int {
        var best = 0
        var bestValue = logits[0]
        // first max wins, as torch.argmax
        for i in 1..<V where logits[i] > bestValue { best = i; bestValue = logits[i] }
        return best
    }
}

struct CategoricalSampler: LogitSampler {
    let temperature: Float
    let topK: Int  // 0 = off
    let topP: Float  // 1 = off
    private var rng: SeededRNG
    private var order: [Int32]  // candidate ids, reused between calls

    init(temperature: Float, topK: Int, topP: Float, seed: UInt64, vocabularySize V: Int) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        rng = SeededRNG(seed: seed)
        order = [Int32](repeating: 0, count: V)
    }

    mutating func sample(logits: UnsafeMutablePointer<Float>, count V: Int) -> Int {
        if temperature != 1 { for i in 0..<V { logits[i] /= temperature } }
        // Candidates sorted by logit, descending (ties: lower id first).
        var n = V
        let topK = self.topK
        var order: [Int32] = []  // take the buffer out of self (no copy) and put it back after
        swap(&order, &self.order)
        defer { swap(&order, &self.order) }
        order.withUnsafeMutableBufferPointer { o in
            for i in 0..<V { o[i] = Int32(i) }
            if topK > 0 && topK < V {
                // keep every token whose logit reaches the k-th largest (transformers keeps ties)
                let kth = CategoricalSampler.kthLargest(logits, V, topK)
                n = 0
                for i in 0..<V where logits[i] >= kth { o[n] = Int32(i); n += 1 }
            }
            o[0..<n].sort { logits[Int($0)] > logits[Int($1)] || (logits[Int($0)] == logits[Int($1)] && $0 < $1) }
        }
        let maxLogit = logits[Int(order[0])]
        var total: Double = 0
        for r in 0..<n { total += Double(expf(logits[Int(order[r])] - maxLogit)) }
        if topP < 1 {
            // keep a token while the mass of the tokens ranked above it is below top_p
            var above: Double = 0
            var keep = 0
            for r in 0..<n {
                if above / total >= Double(topP) && keep >= 1 { break }
                above += Double(expf(logits[Int(order[r])] - maxLogit))
                keep += 1
            }
            n = keep
            total = above
        }
        let u = rng.nextUnit() * total
        var acc: Double = 0
        for r in 0..<n {
            acc += Double(expf(logits[Int(order[r])] - maxLogit))
            if u < acc { return Int(order[r]) }
        }
        return Int(order[n - 1])
    }

    private static func kthLargest(_ logits: UnsafePointer<Float>, _ V: Int, _ k: Int) -> Float {
        var top = [Float](repeating: -.infinity, count: k)  // ascending; top[0] is the k-th largest so far
        for i in 0..<V where logits[i] > top[0] {
            var j = 0
            while j + 1 < k && top[j + 1] < logits[i] { top[j] = top[j + 1]; j += 1 }
            top[j] = logits[i]
        }
        return top[0]
    }
}
