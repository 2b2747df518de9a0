// StandardExecutors: the registry muwad serves by default, and what its executors share: one model cache
// (one loaded copy of each base model for generate, finetune and evaluate jobs alike) and the rules for
// finding models and adapters by name (Locations).
import JobQueue
import Storage

/// What every executor of one daemon (or one `muwad run`) shares.
public struct ExecutorEnvironment: Sendable {
    public let locations: Locations
    let models: ModelCache

    /// - Parameters:
    ///   - stateDirectory: where models/, adapters/ and jobs/ live; nil: payloads must give paths.
    ///   - registry: muwa.adapters, when there is a database.
    ///   - cachedModels: base models kept loaded at once.
    ///   - batchRows: most sequences in one model's decode batch, across generate jobs.
    public init(stateDirectory: String?, registry: (any AdapterRegistry)? = nil, cachedModels: Int = 2,
                batchRows: Int = 16) {
        locations = Locations(stateDirectory: stateDirectory, registry: registry)
        models = ModelCache(capacity: cachedModels, batchRows: batchRows)
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
