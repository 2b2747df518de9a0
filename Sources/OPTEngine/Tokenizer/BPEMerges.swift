// BPEMerges: the byte-pair merge table and the merge loop that turns one pre-tokenized word into
// token ids, plus the per-word cache that makes repeated words free.
//
// Algorithm (as `tokenizers`' `Word::merge_all` without dropout): start from one symbol per byte;
// repeatedly pick, among all adjacent pairs that have a merge, the one with the lowest rank — the
// leftmost one on a tie — and replace it by the merged symbol; stop when no adjacent pair has a
// merge. Words are usually short (a few symbols): for them we keep the rank of every adjacent pair in an
// array and rescan it, and after a merge only the two neighbouring pairs need a fresh lookup. That is
// O(n²) in the word's length, so a long word (a letter repeated 256 Ki times, base64) merges through a
// priority queue of (rank, position) over a linked list of symbols instead, O(n log n), as `tokenizers`
// does; both give the same symbols.
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
                    "\(source): merge \(rank + 1) \"\(left) \(right)\" uses \"\(missing)\", which is not in the vocabulary")
            }
            guard let resultId = vocab[left + right] else {
                throw EngineError.tokenizer(
                    "\(source): merge \(rank + 1) \"\(left) \(right)\" makes \"\(left + right)\", which is not in the vocabulary")
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

    /// Words longer than this many symbols merge through the queue; shorter ones by rescanning.
    static let rescanLimit = 48

    /// Merges `symbols` (initially one id per byte) in place until no adjacent pair has a merge.
    func apply(_ symbols: inout [Int32]) {
        if symbols.count > Self.rescanLimit {
            applyByQueue(&symbols)
        } else {
            applyByRescan(&symbols)
        }
    }

    /// The merge loop over an array of pair ranks, rescanned after each merge (fast for short words).
    func applyByRescan(_ symbols: inout [Int32]) {
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

extension BPEMerges {
    /// The merge loop for long words: symbols in a doubly linked list over their original positions, and
    /// a min-queue of (rank, left position) holding every adjacent pair that has a merge. A popped entry
    /// is acted on only when its position still starts a pair with that rank (entries go stale as their
    /// neighbours merge); positions keep their order, so the lowest (rank, position) is the lowest-rank
    /// pair, leftmost on a tie — the rescan's choice.
    func applyByQueue(_ symbols: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else { return }
        var ids = symbols
        var next = Array(1...n)  // n: no next symbol
        var previous = Array(-1..<(n - 1))  // -1: no previous symbol
        var alive = [Bool](repeating: true, count: n)
        var queue = MergeQueue()
        queue.reserve(n)
        for k in 0..<(n - 1) {
            if let merge = lookup(ids[k], ids[k + 1]) { queue.push(rank: merge.rank, position: k) }
        }
        while let (rank, position) = queue.pop() {
            let right = next[position]
            guard alive[position], right < n, let merge = lookup(ids[position], ids[right]), merge.rank == rank
            else { continue }
            ids[position] = merge.result
            alive[right] = false
            let after = next[right]
            next[position] = after
            if after < n { previous[after] = position }
            let before = previous[position]
            if before >= 0, let left = lookup(ids[before], ids[position]) {
                queue.push(rank: left.rank, position: before)
            }
            if after < n, let following = lookup(ids[position], ids[after]) {
                queue.push(rank: following.rank, position: position)
            }
        }
        symbols.removeAll(keepingCapacity: true)
        var k = 0
        while k < n {
            symbols.append(ids[k])
            k = next[k]
        }
    }
}

/// A binary min-heap of (rank, position), packed as rank << 32 | position (both non-negative, so the
/// packed order is the (rank, position) order).
struct MergeQueue {
    private var heap: [UInt64] = []

    mutating func reserve(_ count: Int) { heap.reserveCapacity(count) }

    mutating func push(rank: Int32, position: Int) {
        heap.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(truncatingIfNeeded: position)))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (rank: Int32, position: Int)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < heap.count else { break }
                var smallest = left
                if left + 1 < heap.count, heap[left + 1] < heap[left] { smallest = left + 1 }
                guard heap[smallest] < heap[parent] else { break }
                heap.swapAt(smallest, parent)
                parent = smallest
            }
        }
        return (Int32(bitPattern: UInt32(top >> 32)), Int(UInt32(truncatingIfNeeded: top)))
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
