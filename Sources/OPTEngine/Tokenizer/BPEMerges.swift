// BPEMerges: the byte-pair merge table and the merge loop that turns one pre-tokenized word into
// token ids, plus the per-word cache that makes repeated words free.
//
// Algorithm (as `tokenizers`' `Word::merge_all` without dropout): start from one symbol per byte;
// repeatedly pick, among all adjacent pairs that have a merge, the one with the lowest rank — the
// leftmost one on a tie — and replace it by the merged symbol; stop when no adjacent pair has a
// merge. Instead of a heap we keep the rank of every adjacent pair in an array and rescan it: words
// are short (a few symbols), and after a merge only the two neighbouring pairs need a fresh lookup.
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

    /// Merges `symbols` (initially one id per byte) in place until no adjacent pair has a merge.
    func apply(_ symbols: inout [Int32]) {
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
