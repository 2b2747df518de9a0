// EngineThreads: how many cores the engine's own loops (attention, layer norm, activations, residual
// adds, dropout, the optimizer, cross-entropy, the row-invariant gemv kernels) split their work over,
// and the one way they split it. `configure(_:)` (the CLI's --threads) sets this; OpenBLAS runs
// single-threaded and BLAS.swift splits large products over these threads. Work runs on the engine's own
// persistent workers (`run(parts:)`, CKernels' thread_pool.c: spinning briefly between regions so decode's
// many short regions start at once), or on GCD's concurrentPerform pool when that pool is busy (a nested
// region, another thread's); no thread is created per call, no lock is held while work runs.
//
// Determinism: every helper splits by a fixed grain (elements or rows), never by the thread count, and
// reductions combine their fixed chunks in index order, so a result is the same bits for any N.
import CKernels
import Dispatch
import Foundation
import Synchronization

public enum EngineThreads {
    /// The cores this process may use (sched affinity / cgroup aware, as Foundation reports them).
    public static let available = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// 0 = not configured (use `available`). A relaxed atomic: read on every parallel loop, written once
    /// at startup (the CLI) or by tests.
    private static let configured = Atomic<Int>(0)

    /// Threads the engine's loops use.
    public static var count: Int {
        let n = configured.load(ordering: .relaxed)
        return n > 0 ? n : available
    }

    /// Sets the engine's threads to `n` (at least 1); OpenBLAS itself runs single-threaded (BLAS.swift).
    public static func configure(_ n: Int) {
        let threads = max(1, n)
        configured.store(threads, ordering: .relaxed)
        BLAS.threads = 1
    }

    /// Calls `body(p)` for every p in 0..<parts, on at most `count` threads (this one included: more parts than
    /// that are taken in turn, p, p + threads, …), and returns when all are done: the one way the engine's loops
    /// and kernels fan out. The pool never holds more workers than the largest thread count asked for.
    @inline(__always)
    public static func run(parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 || count <= 1 {
            for p in 0..<max(parts, 0) { body(p) }
            return
        }
        if parts > count {
            let threads = count
            run(parts: threads) { t in
                var p = t
                while p < parts {
                    body(p)
                    p += threads
                }
            }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = body
            let ran = withUnsafeMutablePointer(to: &job) { pointer in
                muwa_pool_run(parts, runPart, pointer)
            }
            if ran == 0 { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
        }
    }

    /// Elements per chunk of an elementwise loop: large enough that a chunk's work (≥ ~30 µs) dwarfs
    /// the dispatch, small enough that a 64-core machine has chunks to share.
    public static let elementGrain = 1 << 15

    /// Calls `body(range)` for consecutive chunks of `0..<n` of `grain` items each (the last may be
    /// shorter), in parallel over up to `count` threads. Chunk boundaries depend only on n and grain.
    @inline(__always)
    public static func forEachChunk(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let g = max(1, grain)
        let chunks = (n + g - 1) / g
        let parts = min(count, chunks)
        if parts <= 1 {
            for c in 0..<chunks { body((c * g)..<min(n, (c + 1) * g)) }
            return
        }
        // part p takes chunks p, p + parts, …: balanced for uniform work, no shared counter
        run(parts: parts) { p in
            var c = p
            while c < chunks {
                body((c * g)..<min(n, (c + 1) * g))
                c += parts
            }
        }
    }

    /// Calls `body(range)` for consecutive chunks of `0..<n` of `grain` items each, handed out in order to
    /// whichever of up to `count` threads is free (a shared counter), for loops whose equal chunks still take
    /// unequal time (memory-bound row products, where one core's share of the bandwidth varies). Only for
    /// bodies whose results do not depend on which thread runs a chunk.
    @inline(__always)
    public static func forEachClaimedChunk(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let g = max(1, grain)
        let chunks = (n + g - 1) / g
        let parts = min(count, chunks)
        if parts <= 1 {
            body(0..<n)
            return
        }
        let next = Atomic<Int>(0)
        run(parts: parts) { _ in
            while true {
                let c = next.add(1, ordering: .relaxed).oldValue
                if c >= chunks { break }
                body((c * g)..<min(n, (c + 1) * g))
            }
        }
    }

    /// Calls `body(item, part)` for every item in 0..<n over `parts` parallel parts, each part claiming the next
    /// item when it is free (a shared counter: a part slowed by the rest of the machine takes fewer), so
    /// `part` can index per-part scratch. Use when each item is a sizeable task whose result is its own.
    @inline(__always)
    static func forEachItem(_ n: Int, parts requested: Int, _ body: (Int, Int) -> Void) {
        guard n > 0 else { return }
        let parts = max(1, min(requested, n))
        if parts == 1 {
            for i in 0..<n { body(i, 0) }
            return
        }
        let next = Atomic<Int>(0)
        run(parts: parts) { p in
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= n { break }
                body(i, p)
            }
        }
    }

    /// Σ f(chunk) over fixed chunks of 0..<n, the partial sums added in chunk order: the same bits for
    /// any thread count (a single chunk when n ≤ grain: a plain serial sum).
    public static func sum(_ n: Int, grain: Int = elementGrain, _ partial: (Range<Int>) -> Double) -> Double {
        guard n > 0 else { return 0 }
        let g = max(1, grain)
        let chunks = (n + g - 1) / g
        if chunks == 1 { return partial(0..<n) }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunks) { buffer in
            let sums = buffer.baseAddress!
            forEachChunk(chunks, grain: 1) { range in
                for c in range { sums[c] = partial((c * g)..<min(n, (c + 1) * g)) }
            }
            var total = 0.0
            for c in 0..<chunks { total += sums[c] }
            return total
        }
    }
}

/// The pool's entry into a Swift body: `context` points at the `(Int) -> Void` that `run(parts:)` holds.
private func runPart(_ context: UnsafeMutableRawPointer?, _ part: Int) {
    guard let context else { return }
    context.assumingMemoryBound(to: ((Int) -> Void).self).pointee(part)
}

/// out[i] = f(i) style loops over n elements, chunked by ``EngineThreads/elementGrain``.
@inline(__always)
public func parallelElements(_ n: Int, _ body: (Range<Int>) -> Void) {
    EngineThreads.forEachChunk(n, grain: EngineThreads.elementGrain, body)
}

/// Loops over n rows of `width` elements each, chunked so a chunk holds about elementGrain elements.
@inline(__always)
public func parallelRows(_ n: Int, width: Int, _ body: (Range<Int>) -> Void) {
    EngineThreads.forEachChunk(n, grain: max(1, EngineThreads.elementGrain / max(width, 1)), body)
}
