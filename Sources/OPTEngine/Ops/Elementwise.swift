// Elementwise updates of the forward pass (the query scaling, residual adds), split over EngineThreads in
// fixed chunks like the activations: each element is one operation, so results never depend on the split.

/// x[i] *= factor for i < n.
func scale(_ x: UnsafeMutablePointer<Float>, by factor: Float, count n: Int) {
    parallelElements(n) { range in
        for i in range { x[i] *= factor }
    }
}

/// x[i] += y[i] for i < n.
func addInPlace(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) {
    parallelElements(n) { range in
        for i in range { x[i] += y[i] }
    }
}
