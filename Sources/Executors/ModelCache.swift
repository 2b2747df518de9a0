// ModelCache: loaded checkpoints shared by all jobs of a daemon (generate, finetune, evaluate). A model is
// loaded once (on a thread of its own: loading reads and converts hundreds of megabytes) and kept while it
// is among the `capacity` most recently used; concurrent jobs asking for a model being loaded wait for that
// load. Beside a model sits its GenerationBatcher, the one decode batch all generate jobs on that model
// share, built when the first generate job asks for it (fine-tune and evaluate jobs never make one); an
// evicted model's batcher lives on until the jobs using it are done.
import JobQueue
import OPTEngine

actor ModelCache {
    /// A checkpoint loaded for one set of engine options (the same directory in bf16 and int8 is two models).
    struct Key: Hashable, Sendable {
        let directory: String
        let options: EngineOptions
    }

    struct Entry: @unchecked Sendable {
        let generator: Generator
        var batcher: GenerationBatcher?
    }

    private let capacity: Int
    /// Rows of each model's generation batch.
    let batchRows: Int
    private var entries: [Key: Entry] = [:]
    private var recency: [Key] = []
    private var waiting: [Key: [CheckedContinuation<Entry, Error>]] = [:]

    /// Passed to every model loaded (``OPTModel/memoryBudget``).
    let memoryBudget: MemoryBudget

    init(capacity: Int = 2, batchRows: Int = 16, memoryBudget: MemoryBudget = .unlimited) {
        self.memoryBudget = memoryBudget
        self.capacity = max(1, capacity)
        self.batchRows = max(1, batchRows)
    }

    /// The generator for the checkpoint in `directory` loaded with `options`, loading it on first use.
    func generator(for directory: String, options: EngineOptions = .exact) async throws -> Generator {
        try await entry(for: Key(directory: directory, options: options)).generator
    }

    /// The generation batch of the checkpoint in `directory` loaded with `options`, loading it on first use.
    func batcher(for directory: String, options: EngineOptions = .exact) async throws -> GenerationBatcher {
        let key = Key(directory: directory, options: options)
        let entry = try await entry(for: key)
        if let batcher = entries[key]?.batcher ?? entry.batcher { return batcher }
        let batcher = GenerationBatcher(generator: entry.generator, maxRows: batchRows)
        entries[key]?.batcher = batcher  // not kept when the model was evicted meanwhile
        return batcher
    }

    /// How many loaded models have a decode batch (tests).
    var batcherCount: Int { entries.values.filter { $0.batcher != nil }.count }

    private func entry(for key: Key) async throws -> Entry {
        if let entry = entries[key] {
            touch(key)
            return entry
        }
        if waiting[key] != nil {
            return try await withCheckedThrowingContinuation { continuation in
                waiting[key, default: []].append(continuation)
            }
        }
        waiting[key] = []
        let directory = key.directory, options = key.options
        let result: Result<Entry, Error>
        let budget = memoryBudget
        do {
            let entry = try await BlockingWork.run(label: "muwa-load-model") { () -> Entry in
                let model = try OPTModel.load(directory: directory, memoryBudget: budget, options: options)
                let tokenizer = try BPETokenizer.load(directory: directory)
                let generator = Generator(model: model, tokenizer: tokenizer)
                return Entry(generator: generator, batcher: nil)
            }
            result = .success(entry)
        } catch {
            result = .failure(error)
        }
        let waiters = waiting.removeValue(forKey: key) ?? []
        if case .success(let entry) = result {
            entries[key] = entry
            touch(key)
            evict()
        }
        for waiter in waiters { waiter.resume(with: result) }
        return try result.get()
    }

    private func touch(_ key: Key) {
        recency.removeAll { $0 == key }
        recency.append(key)
    }

    private func evict() {
        while recency.count > capacity {
            let oldest = recency.removeFirst()
            entries[oldest] = nil
        }
    }
}
