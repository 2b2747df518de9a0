// DaemonOptions: the command-line options shared by `serve`, `migrate`, `status` and `bench-queue`. Each
// option has an environment twin (MUWA_*), documented in systemd/muwad.env.example.
import ArgumentParser
import Storage

/// Where the database is, and how to log.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: "libpq conninfo or postgres:// URL (env MUWA_DATABASE_URL; empty: libpq's PG* variables).")
    var databaseURL: String?

    @Option(name: .customLong("env-file"), help: "KEY=VALUE file read under the environment (env MUWA_ENV_FILE).")
    var envFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error (env MUWA_LOG_LEVEL).")
    var logLevel: String?

    @Option(
        name: .customLong("log-format"),
        help: "text, or json (one object per line) for log shippers (env MUWA_LOG_FORMAT).")
    var logFormat: String?

    /// --log-format / MUWA_LOG_FORMAT, default text.
    func logFormat(_ source: SettingsSource) throws -> LineLogHandler.Format {
        let name = source.string(logFormat, env: "MUWA_LOG_FORMAT", default: "text")
        guard let format = LineLogHandler.Format(rawValue: name.lowercased()) else {
            throw ValidationError("log format must be text or json, got \"\(name)\"")
        }
        return format
    }

    @Option(
        name: .customLong("migrations-dir"),
        help: "Folder of NNNN_name.up.sql files (env MUWA_MIGRATIONS_DIR; default: found beside the binary).")
    var migrationsDirectory: String?

    func source() throws -> SettingsSource {
        try SettingsSource(envFile: envFile)
    }

    func connectionSettings(_ source: SettingsSource) -> ConnectionSettings {
        ConnectionSettings(conninfo: source.string(databaseURL, env: "MUWA_DATABASE_URL", default: ""))
    }

    func migrationsFolder(_ source: SettingsSource) -> String? {
        migrationsDirectory ?? source.value("MUWA_MIGRATIONS_DIR")
    }
}

/// How `muwad serve` claims and runs jobs.
struct QueueOptions: ParsableArguments {
    @Option(help: "Comma-separated queues to serve (env MUWA_QUEUES; default: default).")
    var queues: String?

    @Option(help: "Comma-separated job kinds to serve (env MUWA_KINDS; default: every kind with an executor).")
    var kinds: String?

    @Option(
        help: "Jobs run at once (env MUWA_CONCURRENCY; default 1). Generate jobs running together share a decode batch."
    )
    var concurrency: Int?

    @Option(
        help:
            "Most sequences in one model's decode batch, across generate jobs (env MUWA_BATCH_ROWS; 1…16, default 16).")
    var batchRows: Int?

    @Option(help: "Base models kept loaded at once (env MUWA_CACHED_MODELS; default 2).")
    var cachedModels: Int?

    @Option(name: .customLong("memory-limit"), help: MemoryLimitSetting.help)
    var memoryLimit: String?

    @Option(help: "Lease of a claimed job (env MUWA_LEASE; default 60s).")
    var lease: String?

    @Option(help: "Lease renewal interval (env MUWA_HEARTBEAT; default 15s).")
    var heartbeat: String?

    @Option(
        name: .customLong("poll-interval"),
        help: "Polling fallback behind LISTEN/NOTIFY (env MUWA_POLL_INTERVAL; default 5s).")
    var pollInterval: String?

    @Option(
        name: .customLong("grace-period"),
        help: "Time running jobs get to finish on SIGTERM (env MUWA_GRACE_PERIOD; default 30s).")
    var gracePeriod: String?

    @Option(
        name: .customLong("stop-timeout"),
        help:
            "Time a job asked to stop gets to reach a safe point and checkpoint (env MUWA_STOP_TIMEOUT; default 10m: an opt-1.3b fine-tune step on 2 cores)."
    )
    var stopTimeout: String?

    @Option(
        name: .customLong("rescue-interval"),
        help: "How often expired leases are looked for (env MUWA_RESCUE_INTERVAL; default lease/4).")
    var rescueInterval: String?

    @Option(
        name: .customLong("retry-base"),
        help: "Backoff after a first failed attempt (env MUWA_RETRY_BASE; default 10s).")
    var retryBase: String?

    @Option(name: .customLong("retry-max"), help: "Longest retry backoff (env MUWA_RETRY_MAX; default 1h).")
    var retryMax: String?

    @Option(
        name: .customLong("default-time-limit"),
        help:
            "Time limit of jobs enqueued without one, e.g. 7d or 12h; none for no limit (env MUWA_DEFAULT_TIME_LIMIT; default 7d)."
    )
    var defaultTimeLimit: String?

    @Option(
        name: .customLong("max-lost-runs"),
        help:
            "A job whose worker stopped (crashed, was killed) this many times while running it fails for good (env MUWA_MAX_LOST_RUNS; default 2; 0: no limit)."
    )
    var maxLostRuns: Int?

    @Option(
        name: .customLong("state-dir"),
        help: "Checkpoints and adapters (env MUWA_STATE_DIR, else $STATE_DIRECTORY, else ./.muwa-local/state).")
    var stateDirectory: String?

    @Option(
        name: .customLong("work-retention"),
        help: "How long a finished job's work directory (checkpoints) stays (env MUWA_WORK_RETENTION; default 7d).")
    var workRetention: String?

    @Option(
        name: .customLong("job-retention"),
        help:
            "Delete finished jobs (and their outputs) older than this, e.g. 90d; none keeps them (env MUWA_JOB_RETENTION; default none)."
    )
    var jobRetention: String?

    @Option(
        name: .customLong("metrics-listen"),
        help:
            "Serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9464 (env MUWA_METRICS_LISTEN; default off)."
    )
    var metricsListen: String?

    @Option(
        name: .customLong("clean-interval"),
        help: "Time between cleaning rounds (env MUWA_CLEAN_INTERVAL; default 10m).")
    var cleanInterval: String?

    @Option(
        name: .customLong("model-roots"),
        help:
            "Directories payloads may name models and adapters in, ':'-separated; '*': any (env MUWA_MODEL_ROOTS; default: the state directory and /srv/muwa)."
    )
    var modelRoots: String?

    @Option(
        name: .customLong("data-roots"),
        help:
            "Directories payloads may name datasets in, ':'-separated; '*': any (env MUWA_DATA_ROOTS; default: the state directory and /srv/muwa)."
    )
    var dataRoots: String?

    @Option(
        name: .customLong("max-prompt-bytes"),
        help: "Most bytes of prompt text in one generate job (env MUWA_MAX_PROMPT_BYTES; default 1048576).")
    var maxPromptBytes: Int?

    @Flag(
        name: .customLong("auto-migrate"),
        help: "Apply pending migrations at start instead of refusing to run (env MUWA_AUTO_MIGRATE).")
    var autoMigrate = false
}
