// The optimizer step of LoRA training, as PyTorch + transformers take it:
//  - AdamW over an arena of parameters, as torch.optim.AdamW's single-tensor path computes it (the path
//    torch takes on CPU): decoupled weight decay p ← p·(1 − lr·wd), moments m ← lerp(m, g, 1 − β1) and
//    v ← β2·v + (1 − β2)·g², bias corrections in Double, p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε);
//  - global gradient-norm clipping as torch.nn.utils.clip_grad_norm_;
//  - learning-rate schedules as transformers' get_{linear,cosine,constant}_schedule_with_warmup under
//    torch's LambdaLR: the k-th optimizer step (k = 0, 1, …) uses base_lr · λ(k), so with warmup the first
//    step has lr 0, exactly as the Trainer does.
// Both run over EngineThreads: the update is elementwise, and the norm's sum of squares is taken over
// fixed chunks combined in order, so neither depends on the thread count.
//   params, grads, m, v: (count) in one LoRALayout
import Foundation
import OPTEngine

/// Hyperparameters with transformers' TrainingArguments defaults.
public struct AdamWSettings: Codable, Sendable, Equatable {
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var weightDecay = 0.0

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    enum CodingKeys: String, CodingKey {
        case beta1 = "adam_beta1", beta2 = "adam_beta2", epsilon = "adam_epsilon", weightDecay = "weight_decay"
    }
}

public final class AdamW: @unchecked Sendable {
    public let settings: AdamWSettings
    /// First and second moments (torch's exp_avg, exp_avg_sq).
    public let m: FloatArena, v: FloatArena
    /// Updates done (torch's `step`).
    public private(set) var step = 0

    public init(count: Int, settings: AdamWSettings) {
        self.settings = settings
        m = FloatArena(count: count)
        v = FloatArena(count: count)
    }

    /// Restores moments and step from a checkpoint.
    public func restore(m: [Float], v: [Float], step: Int) {
        precondition(m.count == self.m.count && v.count == self.v.count, "moment sizes differ")
        for i in 0..<m.count {
            self.m.base[i] = m[i]
            self.v.base[i] = v[i]
        }
        self.step = step
    }

    /// One update of `params` from `grads` with learning rate `lr`.
    public func update(params: FloatArena, grads: FloatArena, lr: Double) {
        precondition(params.count == m.count && grads.count == m.count, "arena sizes differ")
        step += 1
        let s = settings
        let decay = Float(1 - lr * s.weightDecay)
        let w = Float(1 - s.beta1), oneMinusW = 1 - w
        let beta2 = Float(s.beta2), oneMinusBeta2 = Float(1 - s.beta2)
        let biasCorrection1 = 1 - pow(s.beta1, Double(step))
        let biasCorrection2Sqrt = Float((1 - pow(s.beta2, Double(step))).squareRoot())
        let negStepSize = Float(-(lr / biasCorrection1))
        let eps = Float(s.epsilon)
        let p = params.base, g = grads.base, m = m.base, v = v.base, decays = s.weightDecay != 0
        parallelElements(params.count) { range in
            for i in range {
                if decays { p[i] *= decay }
                // torch's lerp: self + w·(end − self) for |w| < 0.5, else end − (end − self)·(1 − w)
                m[i] = abs(w) < 0.5 ? m[i] + w * (g[i] - m[i]) : g[i] - (g[i] - m[i]) * oneMinusW
                v[i] = v[i] * beta2 + oneMinusBeta2 * g[i] * g[i]
                let denom = v[i].squareRoot() / biasCorrection2Sqrt + eps
                p[i] = p[i] + negStepSize * m[i] / denom
            }
        }
    }
}

/// The global L2 norm of `grads`, and (when it exceeds `maxNorm`) the gradients scaled by
/// maxNorm / (norm + 1e-6), as clip_grad_norm_ does. Returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ grads: FloatArena, maxNorm: Double?) -> Double {
    let g = grads.base
    let sum = EngineThreads.sum(grads.count) { range in
        var partial = 0.0
        for i in range { let x = Double(g[i]); partial += x * x }
        return partial
    }
    let norm = Float(sum.squareRoot())
    guard let maxNorm else { return Double(norm) }
    let coef = min(Float(maxNorm) / (norm + 1e-6), 1)
    if coef < 1 { parallelElements(grads.count) { range in for i in range { g[i] *= coef } } }
    return Double(norm)
}

// MARK: - learning-rate schedules

public enum LRScheduleKind: String, Codable, Sendable, CaseIterable {
    case linear
    case cosine
    case constant
    /// transformers' "constant_with_warmup" (plain "constant" ignores warmup, as transformers does).
    case constantWithWarmup = "constant_with_warmup"
}

public struct LRSchedule: Codable, Sendable, Equatable {
    public var kind: LRScheduleKind
    public var baseLR: Double
    public var warmupSteps: Int
    /// num_training_steps of the schedule (linear decays to 0 there; cosine reaches 0 there).
    public var totalSteps: Int

    public init(kind: LRScheduleKind, baseLR: Double, warmupSteps: Int, totalSteps: Int) {
        self.kind = kind
        self.baseLR = baseLR
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// λ(k), in Double as transformers computes it.
    public func factor(step k: Int) -> Double {
        let warm = Double(max(1, warmupSteps))
        switch kind {
        case .constant:
            return 1
        case .constantWithWarmup:
            return k < warmupSteps ? Double(k) / warm : 1
        case .linear:
            if k < warmupSteps { return Double(k) / warm }
            return max(0, Double(totalSteps - k) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            if k < warmupSteps { return Double(k) / warm }
            let progress = Double(k - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
        }
    }

    /// The learning rate of optimizer step k (0-based).
    public func learningRate(step k: Int) -> Double { baseLR * factor(step: k) }
}
