// StandardExecutors: the registry muwad serves by default, and what its executors share: one model cache
// (one loaded copy of each base model for generate, finetune and evaluate jobs alike) and the rules for
// finding models and adapters by name (Locations).
import JobQueue
import OPTEngine
import Storage

/// What every executor of one daemon (or one `muwad run`) shares.
public struct ExecutorEnvironment: Sendable {
    public let locations: Locations
    let models: ModelCache
    /// What a model (weights + buffers) or an adapter may take; larger ones fail their job with an error.
    public let memoryBudget: MemoryBudget

    /// - Parameters:
    ///   - stateDirectory: where models/, adapters/ and jobs/ live; nil: payloads must give paths.
    ///   - registry: muwa.adapters, when there is a database.
    ///   - cachedModels: base models kept loaded at once.
    ///   - batchRows: most sequences in one model's decode batch, across generate jobs.
    ///   - memoryBudget: checked when a model or adapter is loaded and before each generation session.
    public init(stateDirectory: String?, registry: (any AdapterRegistry)? = nil, cachedModels: Int = 2,
                batchRows: Int = 16, memoryBudget: MemoryBudget = .unlimited) {
        locations = Locations(stateDirectory: stateDirectory, registry: registry)
        models = ModelCache(capacity: cachedModels, batchRows: batchRows, memoryBudget: memoryBudget)
        self.memoryBudget = memoryBudget
    }
}

public enum StandardExecutors {
    /// The kinds `registry(environment:)` serves.
    public static var kinds: [String] {
        registry(environment: ExecutorEnvironment(stateDirectory: nil)).kinds
    }

    /// Every executor this build of muwad has, sharing `environment`.
    public static func registry(environment: ExecutorEnvironment) -> ExecutorRegistry {
        ExecutorRegistry([
            PingExecutor(),
            GenerateJobExecutor(environment: environment),
            FineTuneJobExecutor(environment: environment),
            EvaluateJobExecutor(environment: environment),
        ])
    }
}
