// Activations of OPT's feed-forward block. Every published OPT uses ReLU; gelu variants are accepted
// because config.json may name them. Elementwise, split over EngineThreads in fixed chunks.
import Foundation

public enum Activation: Sendable {
    case relu, gelu, geluTanh

    public init?(name: String) {
        switch name {
        case "relu": self = .relu
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        default: return nil
        }
    }

    /// In place over n values.
    public func forward(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        parallelElements(n) { range in
            switch self {
            case .relu:  // a select, not a branch: half the values are negative, so a branch mispredicts
                for i in range { let v = x[i]; x[i] = v < 0 ? 0 : v }
            case .gelu:
                for i in range { x[i] = 0.5 * x[i] * (1 + erff(x[i] / Float(2).squareRoot())) }
            case .geluTanh:
                let k: Float = (2 / Float.pi).squareRoot()
                for i in range { let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(k * (v + 0.044715 * v * v * v))) }
            }
        }
    }

    /// dinp += dout · f'(pre), where `pre` holds the activation's input.
    public func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, pre: UnsafePointer<Float>, count n: Int
    ) {
        parallelElements(n) { range in backward(dinp: dinp, dout: dout, pre: pre, range: range) }
    }

    private func backward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, pre: UnsafePointer<Float>,
        range: Range<Int>
    ) {
        switch self {
        case .relu:
            for i in range where pre[i] > 0 { dinp[i] += dout[i] }
        case .gelu:
            let invSqrt2: Float = 1 / Float(2).squareRoot(), invSqrt2Pi: Float = 1 / (2 * Float.pi).squareRoot()
            for i in range {
                let x = pre[i]
                let cdf = 0.5 * (1 + erff(x * invSqrt2))
                dinp[i] += dout[i] * (cdf + x * invSqrt2Pi * expf(-0.5 * x * x))
            }
        case .geluTanh:
            let k: Float = (2 / Float.pi).squareRoot()
            for i in range {
                let x = pre[i]
                let u = k * (x + 0.044715 * x * x * x)
                let t = tanhf(u)
                let du = k * (1 + 3 * 0.044715 * x * x)
                dinp[i] += dout[i] * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
            }
        }
    }
}
