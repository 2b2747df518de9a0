// ServeSettings: everything `muwad serve` needs, resolved from flags, environment and env file, and
// checked before anything connects. Bad values stop the daemon at start with a sentence saying which
// setting is wrong (systemd then shows it in `systemctl status`).
import ArgumentParser
import Executors
import Foundation
import JobQueue
import Logging
import OPTEngine
import Storage

/// The version muwad reports in muwa.workers and its start-up line.
enum MuwadVersion {
    static let current = "0.1.0"
}

struct ServeSettings {
    /// A fine-tune stops after its current optimizer step: for opt-1.3b at batch 4 × 4 (16 micro-batches of up
    /// to 1,024 tokens) on 2 cores that is minutes, and a job stopped sooner loses the step's work.
    static let defaultStopTimeout: Double = 600

    let connection: ConnectionSettings
    let queue: QueueConfiguration
    let identity: WorkerIdentity
    let logLevel: Logger.Level
    let logFormat: LineLogHandler.Format
    let migrationsDirectory: String?
    let autoMigrate: Bool
    /// Most sequences in one model's decode batch.
    let batchRows: Int
    /// Base models kept loaded.
    let cachedModels: Int
    /// Where the Prometheus endpoint listens, if anywhere.
    let metricsListen: (host: String, port: UInt16)?
    /// Retention of work directories and finished jobs.
    let cleaner: CleanerConfiguration
    /// Where payload paths may point.
    let roots: AccessRoots
    /// Most bytes of prompt text in one generate job.
    let maxPromptBytes: Int
    /// What a model's weights and buffers, or an adapter, may take (--memory-limit / MUWA_MEMORY_LIMIT).
    let memoryBudget: MemoryBudget
    let memoryBudgetSource: MemoryBudget.Source
    /// How jobs' models compute unless a payload says (MUWA_COMPUTE: f32, bf16 or auto).
    let engineDefaults: EngineOptions
    /// Where to write the database connections' usage (JSON array of DatabaseUsage) on a clean stop
    /// (MUWA_CONNECTION_USAGE_FILE; `muwad bench-queue` sets it for its daemons). Nil: logged only.
    let connectionUsageFile: String?

    static func resolve(connection options: ConnectionOptions, queue: QueueOptions, servedKinds available: [String])
        throws -> ServeSettings
    {
        let source = try options.source()
        let levelName = source.string(options.logLevel, env: "MUWA_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(name: levelName) else {
            throw ValidationError(
                "log level must be trace, debug, info, notice, warning or error, got \"\(levelName)\"")
        }
        let kinds = source.list(queue.kinds, env: "MUWA_KINDS", default: available)
        let unknown = kinds.filter { !available.contains($0) }
        guard unknown.isEmpty else {
            throw ValidationError(
                "this muwad has no executor for kind(s) \(unknown.joined(separator: ", ")); it can run \(available.joined(separator: ", "))"
            )
        }
        let identity = WorkerIdentity.current()
        let lease = try source.seconds(queue.lease, env: "MUWA_LEASE", default: 60)
        var rescue: Double?  // nil: a quarter of the lease
        if queue.rescueInterval != nil || source.value("MUWA_RESCUE_INTERVAL") != nil {
            rescue = try source.seconds(queue.rescueInterval, env: "MUWA_RESCUE_INTERVAL", default: 15)
        }
        let defaultTimeLimit = try defaultTimeLimitSeconds(flag: queue.defaultTimeLimit, source: source)
        let maxLostRuns = try source.int(queue.maxLostRuns, env: "MUWA_MAX_LOST_RUNS", default: 2)
        let configuration = QueueConfiguration(
            workerID: identity.id,
            queues: source.list(queue.queues, env: "MUWA_QUEUES", default: ["default"]),
            kinds: kinds,
            concurrency: try source.int(queue.concurrency, env: "MUWA_CONCURRENCY", default: 1),
            leaseSeconds: lease,
            heartbeatSeconds: try source.seconds(queue.heartbeat, env: "MUWA_HEARTBEAT", default: min(15, lease / 4)),
            pollSeconds: try source.seconds(queue.pollInterval, env: "MUWA_POLL_INTERVAL", default: 5),
            gracePeriodSeconds: try source.seconds(queue.gracePeriod, env: "MUWA_GRACE_PERIOD", default: 30),
            stopTimeoutSeconds: try source.seconds(
                queue.stopTimeout, env: "MUWA_STOP_TIMEOUT", default: ServeSettings.defaultStopTimeout),
            rescueIntervalSeconds: rescue,
            retryPolicy: RetryPolicy(
                baseSeconds: try source.seconds(queue.retryBase, env: "MUWA_RETRY_BASE", default: 10),
                maximumSeconds: try source.seconds(queue.retryMax, env: "MUWA_RETRY_MAX", default: 3600)),
            stateDirectory: stateDirectory(flag: queue.stateDirectory, source: source),
            defaultTimeLimitSeconds: defaultTimeLimit, maxLostRuns: maxLostRuns)
        let batchRows = try source.int(queue.batchRows, env: "MUWA_BATCH_ROWS", default: 16)
        let cachedModels = try source.int(queue.cachedModels, env: "MUWA_CACHED_MODELS", default: 2)
        guard (1...rowInvariantMaxRows).contains(batchRows) else {
            throw ValidationError(
                "batch rows must be 1…\(rowInvariantMaxRows) (the row-invariant decode kernels' limit, which keeps a "
                    + "sequence's text the same alone or batched), got \(batchRows)")
        }
        guard (1...64).contains(cachedModels) else {
            throw ValidationError("cached models must be 1…64, got \(cachedModels)")
        }
        let maxPromptBytes = try source.int(
            queue.maxPromptBytes, env: "MUWA_MAX_PROMPT_BYTES", default: ExecutorEnvironment.defaultMaxPromptBytes)
        guard maxPromptBytes >= 1 else {
            throw ValidationError("max prompt bytes must be at least 1, got \(maxPromptBytes)")
        }
        let roots = accessRoots(
            models: queue.modelRoots, data: queue.dataRoots, source: source,
            fallback: AccessRoots.defaultRoots(stateDirectory: configuration.stateDirectory))
        let memory = try MemoryLimitSetting.resolve(flag: queue.memoryLimit, setting: source.value("MUWA_MEMORY_LIMIT"))
        let engineDefaults = try engineOptions(source)
        let problems = configuration.problems()
        guard problems.isEmpty else {
            throw ValidationError("invalid settings: " + problems.joined(separator: "; "))
        }
        return ServeSettings(
            connection: options.connectionSettings(source), queue: configuration, identity: identity, logLevel: level,
            logFormat: try options.logFormat(source),
            migrationsDirectory: options.migrationsFolder(source),
            autoMigrate: try source.bool(queue.autoMigrate, env: "MUWA_AUTO_MIGRATE"),
            batchRows: batchRows, cachedModels: cachedModels,
            metricsListen: try (queue.metricsListen ?? source.value("MUWA_METRICS_LISTEN")).flatMap { setting in
                do { return try MetricsService.parse(setting) } catch { throw ValidationError("\(error)") }
            },
            cleaner: try CleanerSettings.resolve(queue, source: source),
            roots: roots, maxPromptBytes: maxPromptBytes,
            memoryBudget: memory.budget, memoryBudgetSource: memory.source, engineDefaults: engineDefaults,
            connectionUsageFile: source.value("MUWA_CONNECTION_USAGE_FILE"))
    }

    /// MUWA_COMPUTE (default auto): the compute of jobs whose payload does not say.
    static func engineOptions(_ source: SettingsSource) throws -> EngineOptions {
        do {
            return try EngineOptions.parse(compute: source.value("MUWA_COMPUTE"), weights: nil, int8Threshold: nil)
        } catch let error as EngineError {
            throw ValidationError("MUWA_COMPUTE: \(error.description)")
        }
    }

    /// --model-roots / MUWA_MODEL_ROOTS and --data-roots / MUWA_DATA_ROOTS; `fallback` where neither is set
    /// (nil: unrestricted, as `muwad run` has it).
    static func accessRoots(models: String?, data: String?, source: SettingsSource, fallback: [String]?)
        -> AccessRoots
    {
        func roots(_ flag: String?, _ env: String) -> [String]? {
            guard let raw = flag ?? source.value(env) else { return fallback }
            return AccessRoots.parse(raw)
        }
        return AccessRoots(models: roots(models, "MUWA_MODEL_ROOTS"), data: roots(data, "MUWA_DATA_ROOTS"))
    }

    /// --default-time-limit / MUWA_DEFAULT_TIME_LIMIT: a positive duration, or "none"; default 7 days (a real
    /// opt-1.3b fine-tune on 2 cores runs for days, so the default must not cut one short; it only makes sure
    /// that a job without a limit of its own cannot hold a worker for ever).
    static func defaultTimeLimitSeconds(flag: String?, source: SettingsSource) throws -> Double? {
        let raw = flag ?? source.value("MUWA_DEFAULT_TIME_LIMIT")
        if let raw, ["none", "off", "unlimited"].contains(raw.trimmingCharacters(in: .whitespaces).lowercased()) {
            return nil
        }
        let seconds = try source.seconds(
            flag, env: "MUWA_DEFAULT_TIME_LIMIT", default: QueueConfiguration.standardDefaultTimeLimitSeconds)
        guard seconds > 0 else {
            throw ValidationError(
                "the default time limit must be positive, or \"none\" for no limit, got \"\(raw ?? "")\"")
        }
        return seconds
    }

    /// --state-dir, MUWA_STATE_DIR, systemd's $STATE_DIRECTORY (first entry), else ./.muwa-local/state.
    static func stateDirectory(flag: String?, source: SettingsSource) -> String {
        if let flag { return flag }
        if let value = source.value("MUWA_STATE_DIR") { return value }
        if let systemd = source.value("STATE_DIRECTORY")?.split(separator: ":").first { return String(systemd) }
        return FileManager.default.currentDirectoryPath + "/.muwa-local/state"
    }

    /// The start-up line: what this daemon will do.
    var summary: String {
        let q = queue
        return "muwad \(MuwadVersion.current) worker \(identity.id): queues \(q.queues.joined(separator: ",")), "
            + "kinds \(q.kinds.joined(separator: ",")), concurrency \(q.concurrency), lease \(q.leaseSeconds) s, "
            + "heartbeat \(q.heartbeatSeconds) s, poll \(q.pollSeconds) s, grace \(q.gracePeriodSeconds) s, "
            + "default time limit \(q.defaultTimeLimitSeconds.map { "\($0) s" } ?? "none"), max lost runs \(q.maxLostRuns), "
            + "state \(q.stateDirectory), model roots \(roots.models?.joined(separator: ":") ?? "*"), "
            + "data roots \(roots.data?.joined(separator: ":") ?? "*"), memory limit \(memoryBudget) (\(memoryBudgetSource.rawValue)), "
            + "database \(connection.redacted)"
    }
}

extension WorkerIdentity {
    /// host:pid:start-time, unique per process start.
    static func current() -> WorkerIdentity {
        var buffer = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "unknown-host"
        let pid = getpid()
        let started = Int(Date().timeIntervalSince1970 * 1000)
        return WorkerIdentity(id: "\(host):\(pid):\(started)", host: host, pid: pid, version: MuwadVersion.current)
    }
}
