// Every backward function of an OPT layer against finite differences (GradCheck) and, where there is
// one, against its naive reference: linear (F32 and a BF16 base weight), the LoRA term, layer norm,
// ReLU (away from its kink), causal attention with causal and padding masks, softmax, cross-entropy
// with ignored targets, dropout.
import Foundation
import CKernels
import XCTest
@testable import LoRAOps
@testable import OPTEngine

final class OpsGradCheckTests: XCTestCase {
    func testLinearBackward() {
        let M = 5, K = 7, N = 6
        var data = TestData(seed: 1)
        let x = data.normal(M * K), w = data.normal(N * K), bias = data.normal(N), dout = data.normal(M * N)
        func f(_ x: [Float], _ w: [Float], _ bias: [Float]) -> Double {
            var out = [Float](repeating: 0, count: M * N)
            let wt = Tensor.f32(w, shape: [N, K])
            matmul(out: &out, inp: x, weight: wt, bias: bias, M: M, K: K, N: N, scratch: KernelScratch(maxInputDim: K))
            return dot(out, dout)
        }
        var dx = [Float](repeating: 0, count: M * K), dw = [Float](repeating: 0, count: N * K)
        var db = [Float](repeating: 0, count: N)
        linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, M: M, K: K, N: N)
        GradCheck().check("linear dinp", x: x, grad: dx) { f($0, w, bias) }
        GradCheck().check("linear dweight", x: w, grad: dw) { f(x, $0, bias) }
        GradCheck().check("linear dbias", x: bias, grad: db) { f(x, w, $0) }
        var nx = [Float](repeating: 0, count: M * K), nw = [Float](repeating: 0, count: N * K)
        var nb = [Float](repeating: 0, count: N)
        linearBackwardNaive(
            dinp: &nx, dweight: &nw, dbias: &nb, dout: dout, inp: x, weight: Tensor.f32(w, shape: [N, K]),
            M: M, K: K, N: N)
        XCTAssertLessThan(maxDiff(dx, nx), 1e-5)
        XCTAssertLessThan(maxDiff(dw, nw), 1e-5)
        XCTAssertLessThan(maxDiff(db, nb), 1e-5)
    }

    /// A frozen BF16 weight: dinp through the widening path equals the naive reference and the F32 path
    /// over the same (rounded) values.
    func testLinearBackwardInputNarrowWeight() {
        let M = 3, K = 40, N = 300
        var data = TestData(seed: 2)
        let w = data.normal(N * K), dout = data.normal(M * N)
        let region = ByteRegion(allocating: N * K * 2)
        let bits = region.mutableBase!.assumingMemoryBound(to: UInt16.self)
        for i in 0..<(N * K) { bits[i] = floatToBF16(w[i]) }
        let wb = Tensor(dtype: .bf16, shape: [N, K], region: region)
        var fast = [Float](repeating: 0, count: M * K), naive = fast, viaF32 = fast
        linearBackwardInput(
            dinp: &fast, dout: dout, weight: wb, M: M, K: K, N: N, scratch: KernelScratch(maxInputDim: K))
        linearBackwardNaive(dinp: &naive, dweight: nil, dbias: nil, dout: dout, inp: nil, weight: wb, M: M, K: K, N: N)
        linearBackwardInput(
            dinp: &viaF32, dout: dout, weight: wb.toF32(), M: M, K: K, N: N,
            scratch: KernelScratch(maxInputDim: K))
        XCTAssertLessThan(maxDiff(fast, naive), 1e-4)
        XCTAssertLessThan(maxDiff(fast, viaF32), 1e-4)
    }

    func testLoRABackward() {
        let M = 6, K = 9, N = 7, r = 3
        let scale: Float = 2.5
        var data = TestData(seed: 3)
        let x = data.normal(M * K), a = data.normal(r * K), b = data.normal(N * r), dout = data.normal(M * N)
        func f(_ x: [Float], _ a: [Float], _ b: [Float]) -> Double {
            var out = [Float](repeating: 0, count: M * N), u = [Float](repeating: 0, count: M * r)
            loraForward(out: &out, u: &u, inp: x, a: a, b: b, scale: scale, M: M, K: K, N: N, r: r)
            return dot(out, dout)
        }
        var out = [Float](repeating: 0, count: M * N), u = [Float](repeating: 0, count: M * r)
        var naiveOut = out
        loraForward(out: &out, u: &u, inp: x, a: a, b: b, scale: scale, M: M, K: K, N: N, r: r)
        loraForwardNaive(out: &naiveOut, inp: x, a: a, b: b, scale: scale, M: M, K: K, N: N, r: r)
        XCTAssertLessThan(maxDiff(out, naiveOut), 1e-4)
        var dx = [Float](repeating: 0, count: M * K), da = [Float](repeating: 0, count: r * K)
        var db = [Float](repeating: 0, count: N * r), g = [Float](repeating: 0, count: M * r)
        loraBackward(
            dinp: &dx, da: &da, db: &db, g: &g, dout: dout, inp: x, u: u, a: a, b: b, scale: scale,
            M: M, K: K, N: N, r: r)
        GradCheck().check("lora dinp", x: x, grad: dx) { f($0, a, b) }
        GradCheck().check("lora dA", x: a, grad: da) { f(x, $0, b) }
        GradCheck().check("lora dB", x: b, grad: db) { f(x, a, $0) }
        var nx = [Float](repeating: 0, count: M * K), na = [Float](repeating: 0, count: r * K)
        var nb = [Float](repeating: 0, count: N * r)
        loraBackwardNaive(
            dinp: &nx, da: &na, db: &nb, dout: dout, inp: x, a: a, b: b, scale: scale, M: M, K: K, N: N, r: r)
        XCTAssertLessThan(maxDiff(dx, nx), 1e-4)
        XCTAssertLessThan(maxDiff(da, na), 1e-4)
        XCTAssertLessThan(maxDiff(db, nb), 1e-4)
    }

    func testLayerNormBackward() {
        let N = 4, C = 10
        var data = TestData(seed: 4)
        let x = data.normal(N * C, std: 2), w = data.normal(C).map { 1 + 0.3 * $0 }, b = data.normal(C)
        let dout = data.normal(N * C)
        func f(_ x: [Float], _ w: [Float], _ b: [Float]) -> Double {
            var out = [Float](repeating: 0, count: N * C)
            layerNormForward(out: &out, mean: nil, rstd: nil, inp: x, weight: w, bias: b, N: N, C: C)
            return dot(out, dout)
        }
        var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
        layerNormForward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = dw
        layerNormBackward(
            dinp: &dx, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, mean: mean, rstd: rstd,
            N: N, C: C)
        GradCheck(eps: 3e-3).check("layernorm dinp", x: x, grad: dx) { f($0, w, b) }
        GradCheck().check("layernorm dweight", x: w, grad: dw) { f(x, $0, b) }
        GradCheck().check("layernorm dbias", x: b, grad: db) { f(x, w, $0) }
    }

    /// The frozen-norm path (no dweight, no dbias: kernels_layernorm.c, on every kernel table) gives the dinp of
    /// the full Swift pass to float rounding, with and without a weight, for widths that leave a partial vector.
    func testLayerNormInputGradientWithoutWeightGradients() {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for C in [10, 37, 768] {
            let N = 5
            var data = TestData(seed: UInt64(C))
            let x = data.normal(N * C, std: 2), w = data.normal(C).map { 1 + 0.3 * $0 }, dout = data.normal(N * C)
            var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
            layerNormForward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: nil, N: N, C: C)
            for weight in [w, nil] {
                let start = data.normal(N * C)  // dinp accumulates
                var full = start, dw = [Float](repeating: 0, count: C)
                layerNormBackward(
                    dinp: &full, dweight: &dw, dbias: nil, dout: dout, inp: x, weight: weight, mean: mean,
                    rstd: rstd, N: N, C: C)
                for isa in KernelISA.supported {
                    KernelISA.select(isa)
                    var frozen = start
                    layerNormBackward(
                        dinp: &frozen, dweight: nil, dbias: nil, dout: dout, inp: x, weight: weight, mean: mean,
                        rstd: rstd, N: N, C: C)
                    var worst: Float = 0
                    for i in 0..<(N * C) { worst = max(worst, abs(frozen[i] - full[i])) }
                    XCTAssertLessThan(worst, 1e-5, "\(isa) C \(C) weight \(weight != nil)")
                }
            }
        }
    }

    func testReLUBackwardAwayFromTheKink() {
        var data = TestData(seed: 5)
        // keep every input at least 0.1 from 0, where a difference of ±ε cannot cross the kink
        let x = data.normal(50).map { $0 >= 0 ? $0 + 0.1 : $0 - 0.1 }, dout = data.normal(50)
        func f(_ x: [Float]) -> Double {
            var y = x
            Activation.relu.forward(&y, count: y.count)
            return dot(y, dout)
        }
        var dx = [Float](repeating: 0, count: 50)
        Activation.relu.backward(dinp: &dx, dout: dout, pre: x, count: 50)
        GradCheck().check("relu", x: x, grad: dx, f: f)
    }

    /// Causal attention over a batch with right padding, left padding (rows that see no key) and none.
    func testCausalAttentionBackward() {
        let B = 3, T = 5, NH = 2, hs = 3, C = NH * hs
        var data = TestData(seed: 6)
        let q = data.normal(B * T * C), k = data.normal(B * T * C), v = data.normal(B * T * C)
        let dout = data.normal(B * T * C)
        let mask: [UInt8] = [1, 1, 1, 0, 0, /* */ 0, 0, 1, 1, 1, /* */ 1, 1, 1, 1, 1]
        func f(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
            causalAttentionForward(out: &out, att: &att, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)
            return dot(out, dout)
        }
        var out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
        var naiveOut = out
        causalAttentionForward(out: &out, att: &att, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)
        attentionNaive(out: &naiveOut, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)
        XCTAssertLessThan(maxDiff(out, naiveOut), 1e-5)
        var dq = [Float](repeating: 0, count: B * T * C), dk = dq, dv = dq,
            dscores = [Float](repeating: 0, count: T * T)
        causalAttentionBackward(
            dq: &dq, dk: &dk, dv: &dv, dscores: &dscores, dout: dout, att: att, q: q, k: k, v: v,
            keyMask: mask, B: B, T: T, NH: NH, hs: hs)
        GradCheck(eps: 3e-3).check("attention dq", x: q, grad: dq) { f($0, k, v) }
        GradCheck(eps: 3e-3).check("attention dk", x: k, grad: dk) { f(q, $0, v) }
        GradCheck(eps: 3e-3).check("attention dv", x: v, grad: dv) { f(q, k, $0) }
        var nq = [Float](repeating: 0, count: B * T * C), nk = nq, nv = nq
        causalAttentionBackwardNaive(
            dq: &nq, dk: &nk, dv: &nv, dout: dout, q: q, k: k, v: v, keyMask: mask,
            B: B, T: T, NH: NH, hs: hs)
        XCTAssertLessThan(maxDiff(dq, nq), 1e-5)
        XCTAssertLessThan(maxDiff(dk, nk), 1e-5)
        XCTAssertLessThan(maxDiff(dv, nv), 1e-5)
        // masked keys (padding, the future) get no gradient
        for h in 0..<NH { for d in 0..<hs { XCTAssertEqual(dk[(0 * T + 3) * C + h * hs + d], 0) } }
    }

    func testSoftmaxBackward() {
        let n = 8
        var data = TestData(seed: 8)
        let x = data.normal(2 * n), dout = data.normal(2 * n)
        func f(_ x: [Float]) -> Double {
            var p = x
            softmaxForward(probs: &p, logits: x, N: 2, V: n)
            return dot(p, dout)
        }
        var p = x
        softmaxForward(probs: &p, logits: x, N: 2, V: n)
        var d = dout
        softmaxBackwardRows(&d, probs: p, rows: 2, n: n)
        GradCheck(eps: 3e-3).check("softmax", x: x, grad: d, f: f)
    }

    func testCrossEntropyBackwardWithIgnoredTargets() {
        let N = 4, V = 11
        var data = TestData(seed: 9)
        let logits = data.normal(N * V, std: 2), dloss = data.normal(N)
        let targets: [Int32] = [3, ignoreIndex, 0, 10]
        func f(_ x: [Float]) -> Double {
            var losses = [Float](repeating: 0, count: N)
            crossEntropyForward(losses: &losses, logits: x, targets: targets, N: N, V: V)
            return dot(losses, dloss)
        }
        var probs = logits
        softmaxForward(probs: &probs, logits: logits, N: N, V: V)
        var dlogits = [Float](repeating: 0, count: N * V)
        crossEntropySoftmaxBackward(dlogits: &dlogits, probs: probs, targets: targets, dlosses: dloss, N: N, V: V)
        GradCheck(eps: 3e-3).check("cross-entropy", x: logits, grad: dlogits, f: f)
        XCTAssertEqual(Array(dlogits[V..<(2 * V)]), [Float](repeating: 0, count: V), "ignored row has no gradient")
        // the training head's in-place form: the same bits, the ignored row zeroed
        var inPlace = probs
        inPlace[V + 2] = 7  // an ignored row's stale probability must not survive
        crossEntropySoftmaxBackwardInPlace(probs: &inPlace, targets: targets, dlosses: dloss, N: N, V: V)
        XCTAssertEqual(inPlace.map(\.bitPattern), dlogits.map(\.bitPattern))
        var losses = [Float](repeating: 0, count: N)
        crossEntropyForward(losses: &losses, logits: logits, targets: targets, N: N, V: V)
        XCTAssertEqual(losses[1], 0)
        XCTAssertEqual(Double(losses[0]), -log(Double(probs[3])), accuracy: 1e-5)
        // the fused forward gives the same losses to the bit and the same probabilities, in place
        var fused = logits, fusedLosses = [Float](repeating: 0, count: N)
        fused.withUnsafeMutableBufferPointer { f in
            crossEntropySoftmaxForward(
                probs: f.baseAddress!, losses: &fusedLosses, logits: f.baseAddress!,
                targets: targets, N: N, V: V)
        }
        XCTAssertEqual(fusedLosses, losses)
        XCTAssertEqual(fused, probs)
    }

    func testDropoutBackwardAndMaskStatistics() {
        let mask = DropoutMask(p: 0.25, seed: 42, microStep: 3, layer: 1, site: 2)
        var data = TestData(seed: 10)
        let n = 20_000
        let x = data.normal(n), dout = data.normal(n)
        var y = [Float](repeating: 0, count: n)
        mask.forward(out: &y, inp: x, count: n)
        var dx = [Float](repeating: 0, count: n)
        mask.backward(dinp: &dx, dout: dout, count: n)
        GradCheck(directions: 2, coordinates: 4).check("dropout", x: Array(x[0..<200]), grad: Array(dx[0..<200])) {
            xs in
            var out = [Float](repeating: 0, count: 200)
            mask.forward(out: &out, inp: xs, count: 200)
            return dot(out, Array(dout[0..<200]))
        }
        let kept = (0..<n).filter { mask.keeps($0) }.count
        XCTAssertEqual(Double(kept) / Double(n), 0.75, accuracy: 0.01)
        // the same (seed, step, layer, site) gives the same mask; another step another one
        let again = DropoutMask(p: 0.25, seed: 42, microStep: 3, layer: 1, site: 2)
        let other = DropoutMask(p: 0.25, seed: 42, microStep: 4, layer: 1, site: 2)
        XCTAssertEqual((0..<1000).map(mask.keeps), (0..<1000).map(again.keeps))
        XCTAssertNotEqual((0..<1000).map(mask.keeps), (0..<1000).map(other.keeps))
    }
    /// kernels_dropout.c keeps exactly the elements `keeps` names, AVX-512 and scalar alike, from any starting
    /// element (flat streams and packed rows), and its backward adds only where kept (a −0 gradient stays −0).
    func testDropoutKernelKeepsWhatKeepsSays() {
        defer { _ = muwa_dropout_select(-1) }
        let mask = DropoutMask(p: 0.3, seed: 7, microStep: 2, layer: 3, site: 1)
        var data = TestData(seed: 11)
        let rows = 5, cols = 37, n = rows * cols
        let x = data.normal(n), dout = data.normal(n)
        let paddedRow = [4, 0, 9, 2, 13]
        for fast: Int32 in [1, 0] {
            guard muwa_dropout_select(fast) == 1 else { continue }
            var y = [Float](repeating: 1, count: n)
            mask.forward(out: &y, inp: x, count: n)
            XCTAssertEqual(y, (0..<n).map { mask.keeps($0) ? x[$0] * mask.scale : 0 }, "flat, fast \(fast)")
            var dx = [Float](repeating: -0.0, count: n)
            mask.backward(dinp: &dx, dout: dout, count: n)
            for i in 0..<n {
                let expected: Float = mask.keeps(i) ? -0.0 + dout[i] * mask.scale : -0.0
                XCTAssertEqual(dx[i].bitPattern, expected.bitPattern, "backward \(i), fast \(fast)")
            }
            var packed = [Float](repeating: 1, count: n)
            mask.forward(out: &packed, inp: x, rows: rows, cols: cols, paddedRow: paddedRow)
            for r in 0..<rows {
                for c in 0..<cols {
                    let i = r * cols + c, kept = mask.keeps(paddedRow[r] * cols + c)
                    XCTAssertEqual(packed[i], kept ? x[i] * mask.scale : 0, "packed (\(r), \(c)), fast \(fast)")
                }
            }
        }
    }
}
