// ModelCache: loaded checkpoints shared by all generate jobs of a daemon. A model is loaded once (on a
// thread of its own: loading reads and converts hundreds of megabytes) and kept while it is among the
// `capacity` most recently used; concurrent jobs asking for a model being loaded wait for that load.
import JobQueue
import OPTEngine

actor ModelCache {
    struct Entry: @unchecked Sendable {
        let generator: Generator
    }

    private let capacity: Int
    private var entries: [String: Entry] = [:]
    private var recency: [String] = []
    private var waiting: [String: [CheckedContinuation<Entry, Error>]] = [:]

    init(capacity: Int = 2) {
        self.capacity = max(1, capacity)
    }

    /// The generator for the checkpoint in `directory`, loading it on first use.
    func generator(for directory: String) async throws -> Generator {
        if let entry = entries[directory] {
            touch(directory)
            return entry.generator
        }
        if waiting[directory] != nil {
            return try await withCheckedThrowingContinuation { continuation in
                waiting[directory, default: []].append(continuation)
            }.generator
        }
        waiting[directory] = []
        let result: Result<Entry, Error>
        do {
            let entry = try await BlockingWork.run(label: "muwa-load-model") { () -> Entry in
                let model = try OPTModel.load(directory: directory)
                let tokenizer = try BPETokenizer.load(directory: directory)
                return Entry(generator: Generator(model: model, tokenizer: tokenizer))
            }
            result = .success(entry)
        } catch {
            result = .failure(error)
        }
        let waiters = waiting.removeValue(forKey: directory) ?? []
        if case .success(let entry) = result {
            entries[directory] = entry
            touch(directory)
            evict()
        }
        for waiter in waiters { waiter.resume(with: result) }
        return try result.get().generator
    }

    private func touch(_ directory: String) {
        recency.removeAll { $0 == directory }
        recency.append(directory)
    }

    private func evict() {
        while recency.count > capacity {
            let oldest = recency.removeFirst()
            entries[oldest] = nil
        }
    }
}
