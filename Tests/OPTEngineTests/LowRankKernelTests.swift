// kernels_lowrank.c (LoRA's rank-r products) against their plain-loop references: both layouts of the small
// operand ([r, L] and [L, r]), ranks and widths that leave partial register blocks and masked columns, strided
// outputs (nothing written past a row's r or L), accumulation, and results that do not depend on how the rows
// or columns are split among threads. Then the Swift wrappers (LowRank) across thread counts.
import CKernels
import XCTest
@testable import OPTEngine

final class LowRankKernelTests: XCTestCase {
    override func tearDown() {
        _ = muwa_lowrank_select(-1)
        EngineThreads.configure(EngineThreads.available)
        super.tearDown()
    }

    func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) }
    }

    let shapes = [(1, 1, 1), (5, 16, 4), (7, 70, 8), (4, 257, 7), (13, 33, 17), (3, 5, 16), (9, 130, 3)]

    /// Every vector table's kernels (AVX-512, AVX2) against the plain loops.
    func testKernelsMatchTheirReferences() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        let vector = KernelISA.supported.filter { $0 != "scalar" }
        try XCTSkipIf(vector.isEmpty, "no AVX2: the reference loops are the only path")
        for isa in vector {
            KernelISA.select(isa)
            XCTAssertEqual(muwa_lowrank_select(1), 1, isa)
            try checkKernelsMatchTheirReferences()
        }
    }

    func checkKernelsMatchTheirReferences() throws {
        for (M, L, r) in shapes {
            for yLR: Int32 in [0, 1] {
                let tag = "M \(M) L \(L) r \(r) yLR \(yLR)"
                let x = randomFloats(M * (L + 3), seed: UInt64(M * 7 + L)), y = randomFloats(r * L, seed: UInt64(r))
                let u = randomFloats(M * (r + 2), seed: UInt64(M + r))
                // rows_dot: out (M, r) with row stride r + 2; the two columns past r keep their sentinel
                var fast = [Float](repeating: 9, count: M * (r + 2)), reference = fast
                muwa_lowrank_rows_dot(&fast, r + 2, x, L + 3, y, yLR, L, r, 0.5, 0, M)
                muwa_lowrank_rows_dot_reference(&reference, r + 2, x, L + 3, y, yLR, L, r, 0.5, 0, M)
                assertClose(fast, reference, tolerance: 1e-5 * Float(L), "rows_dot \(tag)")
                // rows_add: out (M, L) with row stride L + 3, accumulated onto x
                fast = x
                reference = x
                muwa_lowrank_rows_add(&fast, L + 3, u, r + 2, y, yLR, L, r, 0.75, 0, M)
                muwa_lowrank_rows_add_reference(&reference, L + 3, u, r + 2, y, yLR, L, r, 0.75, 0, M)
                assertClose(fast, reference, tolerance: 1e-5 * Float(r), "rows_add \(tag)")
                for m in 0..<M { for c in L..<(L + 3) { XCTAssertEqual(fast[m * (L + 3) + c], x[m * (L + 3) + c]) } }
                // cols_acc: z (r, L) or (L, r) += uᵀ · x
                let z0 = randomFloats(r * L, seed: 99)
                fast = z0
                reference = z0
                muwa_lowrank_cols_acc(&fast, yLR, u, r + 2, x, L + 3, M, L, r, 1.5, 0, L)
                muwa_lowrank_cols_acc_reference(&reference, yLR, u, r + 2, x, L + 3, M, L, r, 1.5, 0, L)
                assertClose(fast, reference, tolerance: 1e-5 * Float(M), "cols_acc \(tag)")
            }
        }
    }

    /// A sum never depends on the rows or columns a call covers: two ranges give the bits of one.
    func testSplitRangesGiveTheSameBits() throws {
        let original = KernelISA.current
        defer { KernelISA.select(original) }
        for (isa, fastKernels) in KernelISA.supported.map({ ($0, Int32(1)) }) + [(original, Int32(0))] {
            KernelISA.select(isa)
            guard muwa_lowrank_select(fastKernels) == 1 else { continue }
            let M = 11, L = 150, r = 8
            let x = randomFloats(M * L, seed: 1), y = randomFloats(r * L, seed: 2), u = randomFloats(M * r, seed: 3)
            var whole = [Float](repeating: 0, count: M * r), split = whole
            muwa_lowrank_rows_dot(&whole, r, x, L, y, 1, L, r, 1, 0, M)
            muwa_lowrank_rows_dot(&split, r, x, L, y, 1, L, r, 1, 0, 5)
            muwa_lowrank_rows_dot(&split, r, x, L, y, 1, L, r, 1, 5, M)
            XCTAssertEqual(whole, split, "rows_dot, \(isa), fast \(fastKernels)")
            var wholeZ = [Float](repeating: 0, count: r * L), splitZ = wholeZ
            muwa_lowrank_cols_acc(&wholeZ, 0, u, r, x, L, M, L, r, 1, 0, L)
            muwa_lowrank_cols_acc(&splitZ, 0, u, r, x, L, M, L, r, 1, 0, 37)
            muwa_lowrank_cols_acc(&splitZ, 0, u, r, x, L, M, L, r, 1, 37, L)
            XCTAssertEqual(wholeZ, splitZ, "cols_acc, \(isa), fast \(fastKernels)")
        }
    }

    /// LowRank splits large products across threads: the same bits on 1 and 3 threads, and the reference's
    /// values.
    func testWrappersGiveTheSameBitsOnAnyThreadCount() {
        let M = 256, L = 1024, r = 8
        let x = randomFloats(M * L, seed: 4), y = randomFloats(r * L, seed: 5), u = randomFloats(M * r, seed: 6)
        func run(threads: Int) -> (dot: [Float], add: [Float], acc: [Float]) {
            EngineThreads.configure(threads)
            var dot = [Float](repeating: 0, count: M * r), add = x, acc = [Float](repeating: 0, count: L * r)
            LowRank.rowsDot(out: &dot, ldo: r, x: x, ldx: L, y: y, yIsLR: false, M: M, L: L, r: r)
            LowRank.rowsAdd(out: &add, ldo: L, u: u, ldu: r, y: y, yIsLR: true, M: M, L: L, r: r, alpha: 2)
            LowRank.colsAcc(z: &acc, zIsLR: true, u: u, ldu: r, x: x, ldx: L, M: M, L: L, r: r)
            return (dot, add, acc)
        }
        let one = run(threads: 1), three = run(threads: 3)
        XCTAssertEqual(one.dot, three.dot)
        XCTAssertEqual(one.add, three.add)
        XCTAssertEqual(one.acc, three.acc)
        var reference = [Float](repeating: 0, count: L * r)
        muwa_lowrank_cols_acc_reference(&reference, 1, u, r, x, L, M, L, r, 1, 0, L)
        assertClose(one.acc, reference, tolerance: 1e-5 * Float(M), "colsAcc")
    }

    func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        var worst: Float = 0
        for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThanOrEqual(worst, tolerance, what)
    }
}
