// Packed variable-length training (issue 10.3) and the engine's threads (10.4):
//  - packed causal attention equals the padded reference on every real row, forward and backward, for
//    sequences long enough to take several query blocks;
//  - a micro-batch of very different lengths gives the loss and the LoRA gradients of its examples run
//    one at a time (what padding computed, minus the padding), pre-LN and post-LN;
//  - a packed matrix draws its dropout masks by padded element index (the masks of the padded layout);
//  - attention, layer norm, AdamW and gradient-norm clipping give the same bits for any thread count.
import CKernels
import Foundation
import XCTest
@testable import LoRAOps
@testable import OPTEngine

final class PackedTrainingTests: XCTestCase {
    override func tearDown() {
        EngineThreads.configure(EngineThreads.available)
        super.tearDown()
    }

    /// Packs rows b·T + t (t < lengths[b]) of a padded (B, T, C) matrix.
    func pack(_ x: [Float], lengths: [Int], T: Int, C: Int) -> [Float] {
        var out: [Float] = []
        for (b, n) in lengths.enumerated() { out += x[(b * T * C)..<((b * T + n) * C)] }
        return out
    }

    struct AttentionRun { var out, dq, dk, dv: [Float] }

    func packedAttention(
        q: [Float], k: [Float], v: [Float], dout: [Float], lengths: [Int], NH: Int, hs: Int, bf16: Bool = false
    ) -> AttentionRun {
        let C = NH * hs, R = lengths.reduce(0, +), maxLength = lengths.max() ?? 1
        var offsets = [0]
        for n in lengths { offsets.append(offsets.last! + n) }
        var out = [Float](repeating: 0, count: R * C), dq = out, dk = out, dv = out
        var att = [Float](repeating: .nan, count: lengths.reduce(0) { $0 + NH * $1 * $1 })
        let parts = 3
        var scratch = [Float](repeating: 0, count: parts * attentionScratchFloats(maxLength: maxLength, hs: hs))
        offsets.withUnsafeBufferPointer { o in
            let seq = PackedSequences(offsets: o.baseAddress!, count: lengths.count)
            XCTAssertEqual(seq.attFloats(NH: NH), att.count)
            packedCausalAttentionForward(
                out: &out, att: &att, q: q, k: k, v: v, sequences: seq, NH: NH, hs: hs, bf16: bf16)
            packedCausalAttentionBackward(
                dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, parts: parts, maxLength: maxLength,
                dout: dout, att: att, q: q, k: k, v: v, sequences: seq, NH: NH, hs: hs, bf16: bf16)
        }
        return AttentionRun(out: out, dq: dq, dk: dk, dv: dv)
    }

    /// kernels_attention_train.c against the sgemm loops it replaces: lengths that leave partial query blocks
    /// and a head size that leaves masked columns.
    func testAttentionKernelsMatchTheSgemmPath() throws {
        defer { _ = muwa_causal_attention_select(-1) }
        try XCTSkipUnless(muwa_causal_attention_select(1) == 1, "no AVX-512: the sgemm path is the only one")
        for (lengths, NH, hs) in [([1, 33, 70], 2, 24), ([64, 5], 3, 64)] {
            let C = NH * hs, R = lengths.reduce(0, +)
            var data = TestData(seed: UInt64(R))
            let q = data.normal(R * C, std: 0.3), k = data.normal(R * C, std: 0.3)
            let v = data.normal(R * C), dout = data.normal(R * C)
            _ = muwa_causal_attention_select(1)
            let fast = packedAttention(q: q, k: k, v: v, dout: dout, lengths: lengths, NH: NH, hs: hs)
            _ = muwa_causal_attention_select(0)
            let sgemm = packedAttention(q: q, k: k, v: v, dout: dout, lengths: lengths, NH: NH, hs: hs)
            for (name, a, b) in [
                ("out", fast.out, sgemm.out), ("dq", fast.dq, sgemm.dq), ("dk", fast.dk, sgemm.dk),
                ("dv", fast.dv, sgemm.dv),
            ] {
                var worst: Float = 0
                for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
                XCTAssertLessThan(worst, 2e-5, "\(name), lengths \(lengths), hs \(hs)")
            }
        }
    }

    /// kernels_attention_train_bf16.c against plain loops in Double on the operands it rounds to bf16 (Q, K, V and P
    /// forward; dO, V, P, dS, K, Q backward, where dS comes from the f32 probabilities and a dP of rounded operands):
    /// only the order of the f32 sums and, rarely, a value on a bf16 rounding boundary differ. Lengths leave partial
    /// and odd query blocks, head sizes a pair-free tail (13) and whole 16-word transposes (64). The f32 path is
    /// ten times farther off than the bound, so the comparison tells bf16 operands from f32 ones.
    func testBF16AttentionKernelsMatchRoundedOperands() throws {
        try XCTSkipUnless(muwa_attention_bf16_fast() == 1, "no avx512_bf16: the f32 path runs")
        func r(_ x: Float) -> Double { Double(bf16ToFloat(floatToBF16(x))) }
        for (lengths, NH, hs) in [([1, 33, 70], 2, 24), ([64, 5], 2, 64), ([37], 1, 13)] {
            let C = NH * hs, R = lengths.reduce(0, +)
            var data = TestData(seed: UInt64(R + hs))
            let q = data.normal(R * C, std: 0.3), k = data.normal(R * C, std: 0.3)
            let v = data.normal(R * C), dout = data.normal(R * C)
            let got = packedAttention(q: q, k: k, v: v, dout: dout, lengths: lengths, NH: NH, hs: hs, bf16: true)
            let f32 = packedAttention(q: q, k: k, v: v, dout: dout, lengths: lengths, NH: NH, hs: hs)
            var want = AttentionRun(out: got.out.map { _ in 0 }, dq: got.dq.map { _ in 0 }, dk: [], dv: [])
            want.dk = want.dq
            want.dv = want.dq
            var start = 0
            for n in lengths {
                for h in 0..<NH {
                    func at(_ x: [Float], _ t: Int, _ d: Int) -> Float { x[(start + t) * C + h * hs + d] }
                    func dot(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int) -> Double {
                        (0..<hs).reduce(0.0) { $0 + r(at(a, i, $1)) * r(at(b, j, $1)) }
                    }
                    var P = [[Float]](repeating: [Float](repeating: 0, count: n), count: n), dS = P
                    for t in 0..<n {
                        let s = (0...t).map { dot(q, t, k, $0) }, m = s.max() ?? 0
                        let e = s.map { exp($0 - m) }, z = e.reduce(0, +)
                        for j in 0...t { P[t][j] = Float(e[j] / z) }
                        let dP = (0...t).map { dot(dout, t, v, $0) }
                        let rowDot = (0...t).reduce(0.0) { $0 + Double(P[t][$1]) * dP[$1] }
                        for j in 0...t { dS[t][j] = Float(Double(P[t][j]) * (dP[j] - rowDot)) }
                    }
                    for t in 0..<n {
                        for d in 0..<hs {
                            let i = (start + t) * C + h * hs + d
                            want.out[i] = Float((0..<n).reduce(0.0) { $0 + r(P[t][$1]) * r(at(v, $1, d)) })
                            want.dq[i] = Float((0..<n).reduce(0.0) { $0 + r(dS[t][$1]) * r(at(k, $1, d)) })
                            want.dk[i] = Float((0..<n).reduce(0.0) { $0 + r(dS[$1][t]) * r(at(q, $1, d)) })
                            want.dv[i] = Float((0..<n).reduce(0.0) { $0 + r(P[$1][t]) * r(at(dout, $1, d)) })
                        }
                    }
                }
                start += n
            }
            for (name, a, b, c) in [
                ("out", got.out, want.out, f32.out), ("dq", got.dq, want.dq, f32.dq),
                ("dk", got.dk, want.dk, f32.dk), ("dv", got.dv, want.dv, f32.dv),
            ] {
                let scale = b.map(abs).max() ?? 0
                XCTAssertGreaterThan(scale, 0.1, "\(name): a vacuous comparison")
                // measured: ≤ 1.6e-5 · scale (a probability on a rounding boundary), the f32 path 1.5e-3 … 5e-3
                XCTAssertLessThan(maxDiff(a, b), 1e-4 * scale, "\(name), lengths \(lengths), hs \(hs)")
                XCTAssertGreaterThan(maxDiff(c, b), 1e-3 * scale, "\(name): the f32 path is as close")
            }
        }
    }

    func testPackedAttentionEqualsPaddedOnRealRows() {
        let lengths = [150, 5, 70], B = 3, T = 150, NH = 2, hs = 64, C = NH * hs
        var data = TestData(seed: 21)
        let q = data.normal(B * T * C, std: 0.3), k = data.normal(B * T * C, std: 0.3)
        let v = data.normal(B * T * C)
        var mask = [UInt8](repeating: 0, count: B * T), dout = data.normal(B * T * C)
        for (b, n) in lengths.enumerated() { for t in 0..<n { mask[b * T + t] = 1 } }
        // padding rows carry no loss, so no gradient (else the padded layout's padding queries, which see
        // the real keys, would add to their dk and dv)
        for r in 0..<(B * T) where mask[r] == 0 { for c in 0..<C { dout[r * C + c] = 0 } }
        var out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
        causalAttentionForward(out: &out, att: &att, q: q, k: k, v: v, keyMask: mask, B: B, T: T, NH: NH, hs: hs)
        var dq = [Float](repeating: 0, count: B * T * C), dk = dq, dv = dq,
            dscores = [Float](repeating: 0, count: T * T)
        causalAttentionBackward(
            dq: &dq, dk: &dk, dv: &dv, dscores: &dscores, dout: dout, att: att, q: q, k: k, v: v,
            keyMask: mask, B: B, T: T, NH: NH, hs: hs)
        func p(_ x: [Float]) -> [Float] { pack(x, lengths: lengths, T: T, C: C) }
        let packed = packedAttention(q: p(q), k: p(k), v: p(v), dout: p(dout), lengths: lengths, NH: NH, hs: hs)
        XCTAssertLessThan(maxDiff(packed.out, p(out)), 1e-5)
        XCTAssertLessThan(maxDiff(packed.dq, p(dq)), 1e-5)
        XCTAssertLessThan(maxDiff(packed.dk, p(dk)), 1e-5)
        XCTAssertLessThan(maxDiff(packed.dv, p(dv)), 1e-5)
        XCTAssertGreaterThan(p(dq).map(abs).max() ?? 0, 1e-2, "a vacuous comparison")
    }

    func testPackedAttentionSameBitsForAnyThreadCount() {
        let lengths = [130, 7, 64, 1], NH = 3, hs = 32, R = lengths.reduce(0, +), C = NH * hs
        var data = TestData(seed: 22)
        let q = data.normal(R * C, std: 0.3), k = data.normal(R * C, std: 0.3), v = data.normal(R * C)
        let dout = data.normal(R * C)
        var runs: [AttentionRun] = []
        for threads in [1, 2, 5] {
            EngineThreads.configure(threads)
            runs.append(packedAttention(q: q, k: k, v: v, dout: dout, lengths: lengths, NH: NH, hs: hs))
        }
        for run in runs.dropFirst() {
            XCTAssertEqual(run.out, runs[0].out)
            XCTAssertEqual(run.dq, runs[0].dq)
            XCTAssertEqual(run.dk, runs[0].dk)
            XCTAssertEqual(run.dv, runs[0].dv)
        }
    }

    // MARK: - the whole graph

    func adapter(_ model: OPTModel) throws -> LoRAAdapter {
        let config = AdapterConfig(
            r: 2, loraAlpha: 3, targetModules: .names(["q_proj", "v_proj", "out_proj", "fc1", "fc2"]))
        let a = try LoRAAdapter.initialized(config: config, model: model.config, seed: 8)
        var data = TestData(seed: 9)
        for slot in a.layout.slots {
            let b = a.weights.b(slot), values = data.normal(slot.bCount, std: 0.2)
            for i in 0..<slot.bCount { b[i] = values[i] }
        }
        return a
    }

    /// Very different lengths: 60, 2 and 23 tokens (the padded batch would be 3 × 60), some prompts ignored.
    func examples() -> [TrainingExample] {
        var rng = SeededRNG(seed: 10)
        func ids(_ n: Int) -> [Int] { [2] + (1..<n).map { _ in 4 + Int(rng.next() % 50000) } }
        return [
            TrainingExample(inputIds: ids(60)), TrainingExample(inputIds: ids(2)),
            TrainingExample(prompt: ids(9), completion: Array(ids(15).dropFirst())),
        ]
    }

    func testMixedLengthBatchEqualsItsExamplesOneByOne() throws {
        for name in ["pre-ln-f32", "post-ln-f32"] {
            let model = try LoRAFixtures.loadModel(name)
            let a = try adapter(model), examples = examples(), V = model.config.vocabSize
            let graph = try LoRATrainingModel(model: model, layout: a.layout, maxBatch: 3, maxLength: 60)
            let batch = try TrainingBatch.collate(examples, padTokenId: 1, vocabSize: V, maxLength: 60)
            let grads = FloatArena(count: a.layout.count)
            let loss = graph.forwardBackward(batch, params: a.weights, grads: grads, lossScale: 1, microStep: 0)
            XCTAssertEqual(graph.acts.rows, 60 + 2 + 23, "\(name): the batch is not packed")
            let single = FloatArena(count: a.layout.count)
            var lossSum = 0.0
            for ex in examples {
                let one = try TrainingBatch.collate([ex], padTokenId: 1, vocabSize: V, maxLength: 60)
                lossSum += graph.forwardBackward(one, params: a.weights, grads: single, lossScale: 1, microStep: 0)
            }
            XCTAssertEqual(loss, lossSum, accuracy: 1e-4 * abs(lossSum), name)
            let g = grads.toArray(), s = single.toArray()
            let scale = s.map(abs).max() ?? 0
            XCTAssertGreaterThan(scale, 0, "\(name): no gradient")
            XCTAssertLessThan(maxDiff(g, s), 1e-4 * scale, "\(name): packed batch gradients differ from its examples'")
        }
    }

    /// The head forms the logits a block of rows at a time (TrainingActivations.headRows, 1024); blocks of 7
    /// rows (13 blocks, the last partial) give the loss and gradients of one block holding the whole batch.
    func testHeadInBlocksEqualsOneBlock() throws {
        let model = try LoRAFixtures.loadModel("pre-ln-f32")
        let a = try adapter(model), V = model.config.vocabSize
        let batch = try TrainingBatch.collate(examples(), padTokenId: 1, vocabSize: V, maxLength: 60)
        var results: [(loss: Double, grads: [Float])] = []
        for headRows in [TrainingActivations.headRows, 7] {
            let graph = try LoRATrainingModel(
                model: model, layout: a.layout, maxBatch: 3, maxLength: 60, headRows: headRows)
            XCTAssertEqual(graph.acts.headCapacity, min(headRows, 3 * 60))
            let grads = FloatArena(count: a.layout.count)
            let loss = graph.forwardBackward(batch, params: a.weights, grads: grads, lossScale: 1, microStep: 0)
            results.append((loss, grads.toArray()))
        }
        let scale = results[0].grads.map(abs).max() ?? 0
        XCTAssertGreaterThan(scale, 0, "no gradient")
        XCTAssertEqual(results[1].loss, results[0].loss, accuracy: 1e-5 * abs(results[0].loss))
        XCTAssertLessThan(maxDiff(results[1].grads, results[0].grads), 1e-5 * scale)
    }

    /// The mask of a packed matrix is the padded layout's mask on the real rows.
    func testPackedDropoutMaskIsThePaddedMask() {
        let T = 9, cols = 5, lengths = [9, 2, 6]
        let mask = DropoutMask(p: 0.3, seed: 4, microStep: 7, layer: 1, site: 6)
        let padded = [Float](repeating: 1, count: lengths.count * T * cols)
        var paddedOut = padded
        mask.forward(out: &paddedOut, inp: padded, count: padded.count)
        var rows: [Int] = []
        for (b, n) in lengths.enumerated() { for t in 0..<n { rows.append(b * T + t) } }
        let inp = [Float](repeating: 1, count: rows.count * cols)
        var out = inp
        mask.forward(out: &out, inp: inp, rows: rows.count, cols: cols, paddedRow: rows)
        XCTAssertEqual(out, pack(paddedOut, lengths: lengths, T: T, C: cols))
        XCTAssertTrue(out.contains(0) && out.contains { $0 > 1 }, "the mask drops nothing or keeps nothing")
    }

    // MARK: - thread-count invariance of the other loops

    func testLayerNormOptimizerAndClippingSameBitsForAnyThreadCount() {
        let n = 300_000, N = 700, C = 96
        var data = TestData(seed: 23)
        let x = data.normal(N * C), w = data.normal(C), b = data.normal(C), dy = data.normal(N * C)
        let g0 = data.normal(n), p0 = data.normal(n)
        var results: [[Float]] = []
        var norms: [Double] = []
        for threads in [1, 2, 7] {
            EngineThreads.configure(threads)
            var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
            layerNormForward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C)
            var dx = [Float](repeating: 0, count: N * C)
            layerNormBackward(
                dinp: &dx, dweight: nil, dbias: nil, dout: dy, inp: x, weight: w, mean: mean, rstd: rstd,
                N: N, C: C)
            let grads = FloatArena(count: n), params = FloatArena(count: n)
            for i in 0..<n { grads.base[i] = g0[i]; params.base[i] = p0[i] }
            norms.append(clipGradNorm(grads, maxNorm: 1))
            let adam = AdamW(count: n, settings: AdamWSettings(weightDecay: 0.01))
            adam.update(params: params, grads: grads, lr: 1e-3)
            adam.update(params: params, grads: grads, lr: 1e-3)
            results.append(out + dx + params.toArray() + adam.v.toArray())
        }
        XCTAssertEqual(results[1], results[0])
        XCTAssertEqual(results[2], results[0])
        XCTAssertEqual(norms[1], norms[0])
        XCTAssertEqual(norms[2], norms[0])
        // the chunked norm is the plain sum to rounding
        let plain = g0.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(norms[0], plain, accuracy: 1e-5 * plain)
    }
}
