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
    /// The most bytes of prompt text one generate job may bring (all its prompts and inputs, templated).
    public let maxPromptBytes: Int
    /// What a model (weights + buffers) or an adapter may take; larger ones fail their job with an error.
    public let memoryBudget: MemoryBudget
    /// How a job's model computes unless its payload says (`compute`, `weights`): MUWA_COMPUTE for the daemon.
    public let engineDefaults: EngineOptions

    /// - Parameters:
    ///   - stateDirectory: where models/, adapters/ and jobs/ live; nil: payloads must give paths.
    ///   - registry: muwa.adapters, when there is a database.
    ///   - cachedModels: base models kept loaded at once.
    ///   - batchRows: most sequences in one model's decode batch, across generate jobs.
    ///   - roots: where payload paths may point (AccessRoots); `muwad serve` always sets them.
    ///   - maxPromptBytes: see ``maxPromptBytes``.
    ///   - memoryBudget: checked when a model or adapter is loaded and before each generation session.
    ///   - engineDefaults: see ``engineDefaults``.
    public init(
        stateDirectory: String?, registry: (any AdapterRegistry)? = nil, cachedModels: Int = 2,
        batchRows: Int = 16, roots: AccessRoots = .unrestricted,
        maxPromptBytes: Int = ExecutorEnvironment.defaultMaxPromptBytes, memoryBudget: MemoryBudget = .unlimited,
        engineDefaults: EngineOptions = .exact
    ) {
        locations = Locations(stateDirectory: stateDirectory, registry: registry, roots: roots)
        models = ModelCache(capacity: cachedModels, batchRows: batchRows, memoryBudget: memoryBudget)
        self.maxPromptBytes = maxPromptBytes
        self.memoryBudget = memoryBudget
        self.engineDefaults = engineDefaults
    }

    /// 1 MiB of prompt text per generate job.
    public static let defaultMaxPromptBytes = 1 << 20
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
