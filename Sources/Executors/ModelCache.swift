// ModelCache: loaded checkpoints shared by all jobs of a daemon (generate, finetune, evaluate). A model is
// loaded once (on a thread of its own: loading reads and converts hundreds of megabytes) and kept while it
// is among the `capacity` most recently used; concurrent jobs asking for a model being loaded wait for that
// load. Beside a model sits its GenerationBatcher, the one decode batch all generate jobs on that model
// share, built when the first generate job asks for it (fine-tune and evaluate jobs never make one); an
// evicted model's batcher lives on until the jobs using it are done.
import JobQueue
import OPTEngine

actor ModelCache {
    struct Entry: @unchecked Sendable {
        let generator: Generator
        var batcher: GenerationBatcher?
    }

    private let capacity: Int
    /// Rows of each model's generation batch.
    let batchRows: Int
    private var entries: [String: Entry] = [:]
    private var recency: [String] = []
    private var waiting: [String: [CheckedContinuation<Entry, Error>]] = [:]

    /// Passed to every model loaded (``OPTModel/memoryBudget``).
    let memoryBudget: MemoryBudget

    init(capacity: Int = 2, batchRows: Int = 16, memoryBudget: MemoryBudget = .unlimited) {
        self.memoryBudget = memoryBudget
        self.capacity = max(1, capacity)
        self.batchRows = max(1, batchRows)
    }

    /// The generator for the checkpoint in `directory`, loading it on first use.
    func generator(for directory: String) async throws -> Generator {
        try await entry(for: directory).generator
    }

    /// The generation batch of the checkpoint in `directory`, loading it on first use.
    func batcher(for directory: String) async throws -> GenerationBatcher {
        let entry = try await entry(for: directory)
        if let batcher = entries[directory]?.batcher ?? entry.batcher { return batcher }
        let batcher = GenerationBatcher(generator: entry.generator, maxRows: batchRows)
        entries[directory]?.batcher = batcher  // not kept when the model was evicted meanwhile
        return batcher
    }

    /// How many loaded models have a decode batch (tests).
    var batcherCount: Int { entries.values.filter { $0.batcher != nil }.count }

    private func entry(for directory: String) async throws -> Entry {
        if let entry = entries[directory] {
            touch(directory)
            return entry
        }
        if waiting[directory] != nil {
            return try await withCheckedThrowingContinuation { continuation in
                waiting[directory, default: []].append(continuation)
            }
        }
        waiting[directory] = []
        let result: Result<Entry, Error>
        let budget = memoryBudget
        do {
            let entry = try await BlockingWork.run(label: "muwa-load-model") { () -> Entry in
                let model = try OPTModel.load(directory: directory, memoryBudget: budget)
                let tokenizer = try BPETokenizer.load(directory: directory)
                let generator = Generator(model: model, tokenizer: tokenizer)
                return Entry(generator: generator, batcher: nil)
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
        return try result.get()
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
