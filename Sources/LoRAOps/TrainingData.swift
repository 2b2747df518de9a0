// Training data: tokenized examples, collated into right-padded micro-batches as transformers' causal-LM
// collator does (pad id on the right, attention mask 0 there, labels -100 there), and the order in
// which a run visits them (epoch by epoch, optionally shuffled with a seeded permutation per epoch).
// The causal-LM shift is applied here: targets[b, t] = labels[b, t + 1], the last column ignored.
//   tokens, positions, keyMask, targets: (B, T)
import OPTEngine

/// One training sequence: token ids and labels of the same length (-100 = no loss on that token).
public struct TrainingExample: Sendable, Equatable, Codable {
    public var inputIds: [Int]
    public var labels: [Int]

    /// Labels default to the input ids (loss on every next token).
    public init(inputIds: [Int], labels: [Int]? = nil) {
        self.inputIds = inputIds
        self.labels = labels ?? inputIds
    }

    /// Loss on the completion only: the prompt's labels are -100.
    public init(prompt: [Int], completion: [Int]) {
        inputIds = prompt + completion
        labels = [Int](repeating: Int(ignoreIndex), count: prompt.count) + completion
    }

    enum CodingKeys: String, CodingKey {
        case inputIds = "input_ids"
        case labels
    }
}

/// A collated micro-batch of B rows padded on the right to T tokens.
public struct TrainingBatch: Sendable {
    public let B: Int, T: Int
    public var tokens: [Int32]
    /// transformers' positions: cumsum(mask)·mask − 1 (−1 on padding, which reads table row 1).
    public var positions: [Int32]
    public var keyMask: [UInt8]
    /// The next token each position predicts, or -100.
    public var targets: [Int32]
    /// Targets that are not ignored (the loss's denominator).
    public var targetCount: Int

    /// Pads `examples` on the right to the longest one. Throws on empty or mismatched examples, on ids
    /// outside the vocabulary and on sequences longer than `maxLength`.
    public static func collate(
        _ examples: [TrainingExample], padTokenId: Int, vocabSize: Int,
        maxLength: Int
    ) throws -> TrainingBatch {
        guard !examples.isEmpty else { throw LoRAError.invalidTraining("an empty batch") }
        let T = examples.map(\.inputIds.count).max() ?? 0
        guard T > 0 else { throw LoRAError.invalidTraining("an example has no tokens") }
        guard T <= maxLength else {
            throw LoRAError.invalidTraining("an example has \(T) tokens, more than max_length \(maxLength)")
        }
        let B = examples.count
        var batch = TrainingBatch(
            B: B, T: T, tokens: .init(repeating: Int32(padTokenId), count: B * T),
            positions: .init(repeating: -1, count: B * T), keyMask: .init(repeating: 0, count: B * T),
            targets: .init(repeating: ignoreIndex, count: B * T), targetCount: 0)
        for (b, ex) in examples.enumerated() {
            guard ex.labels.count == ex.inputIds.count else {
                throw LoRAError.invalidTraining(
                    "example \(b): \(ex.labels.count) labels for \(ex.inputIds.count) tokens")
            }
            for (t, id) in ex.inputIds.enumerated() {
                guard id >= 0 && id < vocabSize else {
                    throw LoRAError.invalidTraining(
                        "example \(b): token id \(id) is outside the vocabulary of \(vocabSize)")
                }
                batch.tokens[b * T + t] = Int32(id)
                batch.positions[b * T + t] = Int32(t)
                batch.keyMask[b * T + t] = 1
            }
            for t in 0..<max(ex.inputIds.count - 1, 0) {
                let label = ex.labels[t + 1]
                guard label == Int(ignoreIndex) || (label >= 0 && label < vocabSize) else {
                    throw LoRAError.invalidTraining("example \(b): label \(label) is neither -100 nor a token id")
                }
                batch.targets[b * T + t] = Int32(label)
                if label >= 0 { batch.targetCount += 1 }
            }
        }
        return batch
    }
}

/// Where a run is in its data: epoch and index into that epoch's order. Stateless apart from these two
/// numbers: the order of an epoch is a function of (seed, epoch).
public struct DataCursor: Codable, Sendable, Equatable {
    public var epoch = 0
    public var index = 0

    public init(epoch: Int = 0, index: Int = 0) {
        self.epoch = epoch
        self.index = index
    }

    /// The example indices of the next micro-batch of up to `batchSize` (an epoch's last batch may be
    /// smaller, as with drop_last=False), advancing to the next epoch when this one is exhausted.
    public mutating func next(batchSize: Int, count n: Int, shuffle: Bool, seed: UInt64) -> [Int] {
        if index >= n {
            epoch += 1
            index = 0
        }
        let order = DataCursor.order(epoch: epoch, count: n, shuffle: shuffle, seed: seed)
        let end = min(index + batchSize, n)
        defer { index = end }
        return Array(order[index..<end])
    }

    /// The visiting order of `epoch`: 0..<n, or a Fisher–Yates shuffle seeded by (seed, epoch).
    public static func order(epoch: Int, count n: Int, shuffle: Bool, seed: UInt64) -> [Int] {
        var order = Array(0..<n)
        guard shuffle, n > 1 else { return order }
        var rng = SeededRNG(seed: mix64(seed ^ mix64(UInt64(epoch) &+ 0xE90C)))
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}
