// The elementwise loops of a training step — clearing and copying buffers, residual adds, the q scaling, ReLU
// and its gradient — split over EngineThreads in fixed chunks (elementwise: the same bits for any thread count).
//   every buffer: (n)
import OPTEngine

enum TrainingLoops {
    /// x = 0 (the threads clear their own chunks: one core's stores do not reach the memory's rate)
    static func zero(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        parallelElements(n) { range in (x + range.lowerBound).update(repeating: 0, count: range.count) }
    }

    /// out = x  (not overlapping)
    static func copy(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
        parallelElements(n) { range in
            (out + range.lowerBound).update(from: x + range.lowerBound, count: range.count)
        }
    }

    /// x *= s
    static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count n: Int) {
        parallelElements(n) { range in for i in range { x[i] *= s } }
    }

    /// out = a + b  (out may be a or b)
    static func add(
        out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int
    ) {
        parallelElements(n) { range in for i in range { out[i] = a[i] + b[i] } }
    }

    /// x += y
    static func accumulate(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) {
        parallelElements(n) { range in for i in range { x[i] += y[i] } }
    }

    /// out = max(pre, 0)
    static func relu(out: UnsafeMutablePointer<Float>, pre: UnsafePointer<Float>, count n: Int) {
        parallelElements(n) { range in for i in range { out[i] = max(pre[i], 0) } }
    }

    /// dinp = pre > 0 ? dout : 0  (overwrites)
    static func reluBackward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, pre: UnsafePointer<Float>,
        count n: Int
    ) {
        parallelElements(n) { range in  // both loads unconditional: a select the compiler vectorises
            for i in range { let d = dout[i]; dinp[i] = pre[i] > 0 ? d : 0 }
        }
    }
}
