// The engine's worker pool (CKernels' thread_pool.c behind EngineThreads.run): every part of a region runs
// exactly once, whether the workers were spinning or asleep, and regions started from inside a part or from
// several threads at once still complete (they fall back to GCD while the pool is busy).
import CKernels
import Dispatch
import Foundation
import Synchronization
import XCTest
@testable import OPTEngine

final class EngineThreadsTests: XCTestCase {
    override func tearDown() {
        EngineThreads.configure(EngineThreads.available)
        super.tearDown()
    }

    /// Runs `run(parts:)` and returns how many times each part ran.
    func partCounts(_ parts: Int) -> [Int] {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: parts)
        counts.initialize(repeating: 0, count: parts)
        defer { counts.deallocate() }
        EngineThreads.run(parts: parts) { p in counts[p] += 1 }
        return Array(UnsafeBufferPointer(start: counts, count: parts))
    }

    func testEveryPartRunsOnceWhetherWorkersSpinOrSleep() {
        for round in 0..<400 {
            let parts = 2 + round % 6
            XCTAssertEqual(partCounts(parts), [Int](repeating: 1, count: parts), "round \(round)")
            if round % 50 == 0 { usleep(2000) }  // past the workers' spin: they sleep and must be woken
        }
    }

    /// More parts than threads: each still runs once, on no more threads than `count` (the pool is not grown
    /// to the number of parts).
    func testMorePartsThanThreadsRunOnAtMostCountThreads() {
        for threads in [1, 2] {
            EngineThreads.configure(threads)
            let seen = Mutex<Set<UInt>>([])
            let counts = partCounts(37)
            EngineThreads.run(parts: 37) { _ in
                let me = UInt(pthread_self())
                seen.withLock { _ = $0.insert(me) }
                usleep(200)  // long enough that a free thread would take a part if one were allowed
            }
            XCTAssertEqual(counts, [Int](repeating: 1, count: 37), "threads \(threads)")
            XCTAssertLessThanOrEqual(seen.withLock { $0.count }, threads, "threads \(threads)")
        }
    }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
        func add() { value.add(1, ordering: .relaxed) }
        var count: Int { value.load(ordering: .relaxed) }
    }

    func testThePoolRunsTopLevelRegionsAndDeclinesNestedOnes() {
        let nested = Counter(), declined = Counter()
        var job: (Int) -> Void = { _ in
            // from inside a part the pool is busy: it must decline (0) and run nothing
            if muwa_pool_run(3, { _, _ in }, nil) == 0 { declined.add() }
            EngineThreads.run(parts: 3) { _ in nested.add() }
        }
        let ran = withUnsafeMutablePointer(to: &job) { pointer in
            muwa_pool_run(
                2,
                { context, part in
                    context?.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
                }, pointer)
        }
        XCTAssertEqual(ran, 1, "an idle pool runs a top-level region")
        XCTAssertEqual(declined.count, 2, "both parts saw the pool busy")
        XCTAssertEqual(nested.count, 6, "nested regions still ran every part (through GCD)")
        XCTAssertEqual(muwa_pool_run(1, { _, _ in }, nil), 0, "one part is the caller's own loop")
    }

    func testRegionsFromSeveralThreadsAtOnceAllComplete() {
        let total = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 {
                EngineThreads.run(parts: 3) { _ in total.add() }
            }
        }
        XCTAssertEqual(total.count, 4 * 200 * 3)
    }

    func testClaimedChunksCoverEveryIndexOnce() {
        EngineThreads.configure(2)
        for (n, grain) in [(1, 8), (7, 8), (1000, 8), (1003, 64), (50272, 32)] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: n)
            seen.initialize(repeating: 0, count: n)
            EngineThreads.forEachClaimedChunk(n, grain: grain) { range in
                XCTAssertLessThanOrEqual(range.count, grain)
                for i in range { seen[i] += 1 }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: seen, count: n)), [Int](repeating: 1, count: n), "n \(n)")
            seen.deallocate()
        }
    }
}
