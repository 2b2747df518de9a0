// BPEMerges: the byte-pair merge table and the merge loop that turns one pre-tokenized word into
// token ids, plus the per-word cache that makes repeated words free.
//
// Algorithm (as `tokenizers`' `Word::merge_all` without dropout): start from one symbol per byte;
// repeatedly pick, among all adjacent pairs that have a merge, the one with the lowest rank — the
// leftmost one on a tie — and replace it by the merged symbol; stop when no adjacent pair has a
// merge. Short words rescan an array of pair ranks (`applyReference`); long ones use a min-heap with
// lazy deletion over a linked list of symbols, so a hostile word of a million bytes stays O(n log n).
import Foundation

struct BPEMerges {
    struct Merge {
        let rank: Int32
        let result: Int32
    }

    /// (left id, right id) packed as left << 32 | right → the merge's rank and resulting id.
    private var table: [UInt64: Merge] = [:]

    var count: Int { table.count }

    /// `merges` in rank order (rank = position). Every piece and every concatenation must be in the
    /// vocabulary, as `tokenizers` requires; `source` names the file in the error otherwise.
    init(merges: [(String, String)], vocab: [String: Int], source: String) throws {
        table.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            guard let leftId = vocab[left], let rightId = vocab[right] else {
                let missing = vocab[left] == nil ? left : right
                throw EngineError.tokenizer(
                    "\(source): merge \(rank + 1) \"\(left) \(right)\" uses \"\(missing)\", which is not in the vocabulary"
                )
            }
            guard let resultId = vocab[left + right] else {
                throw EngineError.tokenizer(
                    "\(source): merge \(rank + 1) \"\(left) \(right)\" makes \"\(left + right)\", which is not in the vocabulary"
                )
            }
            guard rank < Int(Int32.max), let l = Int32(exactly: leftId), let r = Int32(exactly: rightId),
                let m = Int32(exactly: resultId)
            else {
                throw EngineError.tokenizer("\(source): merge \(rank + 1) has an id out of range")
            }
            // A repeated pair keeps its last rank, as both the Python and Rust loaders do.
            table[Self.key(l, r)] = Merge(rank: Int32(rank), result: m)
        }
    }

    @inline(__always)
    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private func lookup(_ left: Int32, _ right: Int32) -> Merge? {
        table[Self.key(left, right)]
    }

    /// Merges `symbols` (initially one id per byte) in place until no adjacent pair has a merge.
    ///
    /// O(n log n) in the word's length: a long word without spaces (a hostile prompt of a million "a"s)
    /// must not take minutes. The symbols form a linked list over their first positions; a min-heap holds
    /// candidate merges ordered by (rank, position), so the pop is the lowest-rank pair, leftmost on a tie —
    /// the same pair ``applyReference(_:)`` picks by rescanning. A merge invalidates the pairs around it
    /// lazily: a popped candidate whose left symbol is gone, which has no right neighbour any more, or
    /// whose pair now has another rank is skipped. After a merge only the two new neighbouring pairs are
    /// pushed, so the heap never holds more than 3n entries.
    func apply(_ symbols: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else { return }
        if n <= 16 {
            applyReference(&symbols)  // short words: the rescan is faster than a heap
            return
        }
        var ids = symbols
        var next = Array(1...n)  // next[i] == n: no right neighbour
        var previous = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        heap.reserve(n)
        for i in 0..<(n - 1) {
            if let merge = lookup(ids[i], ids[i + 1]) { heap.push(rank: merge.rank, position: Int32(i)) }
        }
        while let top = heap.pop() {
            let i = Int(top.position)
            guard alive[i], next[i] < n else { continue }
            let j = next[i]
            guard let merge = lookup(ids[i], ids[j]), merge.rank == top.rank else { continue }
            ids[i] = merge.result
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { previous[next[j]] = i }
            if previous[i] >= 0, let left = lookup(ids[previous[i]], ids[i]) {
                heap.push(rank: left.rank, position: Int32(previous[i]))
            }
            if next[i] < n, let right = lookup(ids[i], ids[next[i]]) {
                heap.push(rank: right.rank, position: Int32(i))
            }
        }
        symbols.removeAll(keepingCapacity: true)
        var i = 0
        while i < n {
            symbols.append(ids[i])
            i = next[i]
        }
    }

    /// The reference merge loop: rescan every adjacent pair for the lowest rank (leftmost on a tie) and
    /// merge it. O(n²) for an n-symbol word; kept for short words and as the tests' reference for `apply`.
    func applyReference(_ symbols: inout [Int32]) {
        guard symbols.count > 1 else { return }
        let none = Merge(rank: Int32.max, result: -1)
        // pairs[k] is the merge of (symbols[k], symbols[k + 1]), or `none`.
        var pairs = [Merge]()
        pairs.reserveCapacity(symbols.count - 1)
        for k in 0..<(symbols.count - 1) {
            pairs.append(lookup(symbols[k], symbols[k + 1]) ?? none)
        }
        while true {
            var best = -1
            var bestRank = Int32.max
            for k in 0..<pairs.count where pairs[k].rank < bestRank {
                bestRank = pairs[k].rank
                best = k
            }
            if best < 0 { return }
            symbols[best] = pairs[best].result
            symbols.remove(at: best + 1)
            pairs.remove(at: best)
            if best > 0 {
                pairs[best - 1] = lookup(symbols[best - 1], symbols[best]) ?? none
            }
            if best < pairs.count {
                pairs[best] = lookup(symbols[best], symbols[best + 1]) ?? none
            }
        }
    }
}

/// A binary min-heap of merge candidates ordered by (rank, position).
struct MergeHeap {
    struct Entry {
        let rank: Int32
        let position: Int32
    }

    private var entries: [Entry] = []

    mutating func reserve(_ count: Int) { entries.reserveCapacity(count) }

    @inline(__always)
    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.position < b.position)
    }

    mutating func push(rank: Int32, position: Int32) {
        entries.append(Entry(rank: rank, position: position))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(entries[child], entries[parent]) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = entries.first else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < entries.count, Self.less(entries[left], entries[smallest]) { smallest = left }
                if right < entries.count, Self.less(entries[right], entries[smallest]) { smallest = right }
                if smallest == parent { break }
                entries.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}

/// Word (its UTF-8 bytes) → token ids, shared by all callers of one tokenizer (hence the lock).
/// Keys are bytes, not Strings: String equality is canonical equivalence, and "é" precomposed and
/// "e" + U+0301 are different words to BPE. Bounded: once it holds `capacity` words it starts over,
/// which only costs recomputation.
final class BPEWordCache: @unchecked Sendable {
    private var entries: [[UInt8]: [Int]] = [:]
    private let lock = NSLock()
    private let capacity: Int

    init(capacity: Int = 200_000) {
        self.capacity = capacity
    }

    func get(_ word: [UInt8]) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[word]
    }

    func set(_ word: [UInt8], _ ids: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[word] = ids
    }
}
