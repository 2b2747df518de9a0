// Softmax cross-entropy over the vocabulary, for training (llm.c's crossentropy_forward /
// crossentropy_softmax_backward). Targets below 0 (transformers' -100) are ignored: their loss and
// gradient are 0. transformers' causal-LM shift (logits[t] predicts labels[t+1]) is the caller's job:
// row i's target is already the next token.
// The exponentials and their sum run in kernels_softmax.c (muwa_exp_sum: AVX-512 or libm).
//   logits, probs, dlogits: (N, V)   targets: (N)   losses, dlosses: (N)
import CKernels
import Foundation

/// The label transformers uses for "no loss here".
public let ignoreIndex: Int32 = -100

/// probs = softmax(logits) per row (probs may be logits: in place). Sums in Double.
func softmaxForward(probs: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, N: Int, V: Int) {
    for i in 0..<N {
        let p = probs + i * V
        var maxv: Float = 0
        let sum = muwa_exp_sum(logits + i * V, V, p, &maxv)
        let inv = Float(1 / sum)
        for j in 0..<V { p[j] *= inv }
    }
}

/// losses[i] = −log softmax(logits[i])[targets[i]], or 0 for an ignored target. Log-sum-exp in Double.
public func crossEntropyForward(
    losses: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int
) {
    for i in 0..<N {
        let target = Int(targets[i])
        guard target >= 0 else { losses[i] = 0; continue }
        let x = logits + i * V
        var maxv: Float = 0
        let sum = muwa_exp_sum(x, V, nil, &maxv)
        losses[i] = Float(Foundation.log(sum) - Double(x[target] - maxv))
    }
}

/// Both of the above with one exponential per element (training's fused head): losses as
/// crossEntropyForward computes them (to the bit), and probs = softmax(logits) (probs may be logits).
public func crossEntropySoftmaxForward(
    probs: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
    targets: UnsafePointer<Int32>, N: Int, V: Int
) {
    for i in 0..<N {
        let x = logits + i * V, p = probs + i * V
        let target = Int(targets[i])
        let targetLogit = target >= 0 ? x[target] : 0  // read before p (which may be x) is overwritten
        var maxv: Float = 0
        let sum = muwa_exp_sum(x, V, p, &maxv)
        losses[i] = target >= 0 ? Float(Foundation.log(sum) - Double(targetLogit - maxv)) : 0
        let inv = Float(1 / sum)
        for j in 0..<V { p[j] *= inv }
    }
}

/// dlogits[i] += (probs[i] − onehot(targets[i])) · dlosses[i], for rows whose target is not ignored.
public func crossEntropySoftmaxBackward(
    dlogits: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
    dlosses: UnsafePointer<Float>, N: Int, V: Int
) {
    for i in 0..<N {
        let target = Int(targets[i])
        guard target >= 0 else { continue }
        let d = dlogits + i * V, p = probs + i * V, g = dlosses[i]
        for j in 0..<V { d[j] += p[j] * g }
        d[target] -= g
    }
}

/// probs[i] becomes the gradient (probs[i] − onehot(targets[i])) · dlosses[i], in place; a row whose target is
/// ignored becomes 0. The same operations as ``crossEntropySoftmaxBackward`` onto a zeroed dlogits, without a
/// second (N, V) buffer and its zeroing (the training head's 51 MB for opt-1.3b).
public func crossEntropySoftmaxBackwardInPlace(
    probs: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, dlosses: UnsafePointer<Float>, N: Int, V: Int
) {
    for i in 0..<N {
        let target = Int(targets[i]), p = probs + i * V
        guard target >= 0 else {
            p.update(repeating: 0, count: V)
            continue
        }
        let g = dlosses[i]
        for j in 0..<V { p[j] *= g }
        p[target] -= g
    }
}
