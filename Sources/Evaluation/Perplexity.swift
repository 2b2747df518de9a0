// Perplexity: the sliding windows of the Muwa notebook's calc_perplexity (the Hugging Face
// "perplexity of fixed-length models" recipe) and the figures computed from them.
//   window k covers tokens [k·stride, min(k·stride + maxLength, n)); its targets are the tokens after the
//   previous window's end (the first window: every token but the first); stop at the window that
//   reaches n.
//   perplexity        exp(mean over windows of the window's mean loss)   — the notebook's figure
//   tokenPerplexity   exp(total NLL / number of scored tokens)            — the standard figure
//   bitsPerByte       total NLL / (ln 2 · UTF-8 bytes of the text)
import Foundation

public struct PerplexityWindow: Sendable, Equatable {
    public var begin: Int
    public var end: Int
    /// First scored position (absolute token index); targets are [firstTarget, end).
    public var firstTarget: Int

    public var targetCount: Int { end - firstTarget }
}

public struct PerplexityResult: Sendable, Equatable {
    /// Mean NLL (nats) of each window's targets.
    public var windowLosses: [Double]
    public var totalNLL: Double
    public var tokenCount: Int
    public var byteCount: Int

    public var perplexity: Double { exp(windowLosses.reduce(0, +) / Double(windowLosses.count)) }
    public var tokenPerplexity: Double { exp(totalNLL / Double(tokenCount)) }
    public var bitsPerByte: Double { totalNLL / (log(2.0) * Double(byteCount)) }
}

public enum Perplexity {
    /// (maxLength, stride) as used on a model with `positions` positions: the window is clamped to the
    /// positions, the stride to the window.
    public static func effective(maxLength: Int, stride: Int, positions: Int) -> (maxLength: Int, stride: Int) {
        let length = max(2, min(maxLength, positions))
        return (length, max(1, min(stride, length)))
    }

    /// The notebook's windows over `tokenCount` tokens (stride ≤ maxLength).
    public static func windows(tokenCount n: Int, maxLength: Int, stride: Int) -> [PerplexityWindow] {
        precondition(maxLength >= 2 && stride >= 1 && stride <= maxLength, "invalid perplexity window")
        var out: [PerplexityWindow] = []
        var previousEnd = 0
        var begin = 0
        while begin < n {
            let end = min(begin + maxLength, n)
            let targets = end - previousEnd  // trg_len: the labels left unmasked
            // logits at position t predict t+1, so the window's first token is never a target
            out.append(PerplexityWindow(begin: begin, end: end, firstTarget: max(begin + 1, end - targets)))
            previousEnd = end
            if end == n { break }
            begin += stride
        }
        return out
    }
}
