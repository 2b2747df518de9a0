// Daemon: `muwad serve` end to end. Waits for the database (with backoff, never giving up on a transient
// error), checks the schema (or migrates with --auto-migrate), then runs the services under one
// ServiceGroup: systemd notifications, LISTEN, muwa.workers presence, the rescuer and the producer. They
// start in that order and stop in reverse, so the producer drains first and LISTEN (which forwards cancel
// requests to draining jobs) stops last. The first SIGTERM/SIGINT drains; a second one exits at once.
import Executors
import Foundation
import JobQueue
import Logging
import ServiceLifecycle
import Storage

#if canImport(Glibc)
    import Glibc
#endif

enum Daemon {
    /// Exit status for a configuration problem (schema too old): systemd's unit does not restart on it.
    static let configurationExitCode: Int32 = 78

    /// `makeRegistry` builds the executors once the database is known (adapters are looked up by name there).
    static func serve(
        settings: ServeSettings, makeRegistry: @escaping @Sendable (ExecutorEnvironment) -> ExecutorRegistry,
        logger: Logger
    ) async throws -> Int32 {
        let signals = SignalWatcher()
        let coordinator = ShutdownCoordinator()
        let notifier = SystemdNotifier()
        return try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                var count = 0
                for await signal in signals.signals {
                    count += 1
                    if count == 1 {
                        logger.notice(
                            "\(SignalWatcher.name(signal)) received: draining (send it again to stop at once)")
                        await coordinator.requestShutdown()
                    } else {
                        logger.warning(
                            "\(SignalWatcher.name(signal)) received again: stopping at once; running jobs come back after their lease expires"
                        )
                        notifier.notify("STATUS=stopped at once by a second signal")
                        exit(128 + signal)
                    }
                }
                return nil
            }
            group.addTask {
                try await run(
                    settings: settings, makeRegistry: makeRegistry, coordinator: coordinator, notifier: notifier,
                    logger: logger)
            }
            var status: Int32 = 0
            while let result = try await group.next() {
                if let code = result {
                    status = code
                    group.cancelAll()
                }
            }
            return status
        }
    }

    private static func run(
        settings: ServeSettings, makeRegistry: @Sendable (ExecutorEnvironment) -> ExecutorRegistry,
        coordinator: ShutdownCoordinator, notifier: SystemdNotifier, logger: Logger
    ) async throws -> Int32 {
        logger.info("\(settings.summary)")
        do {
            try FileManager.default.createDirectory(
                atPath: settings.queue.stateDirectory, withIntermediateDirectories: true)
        } catch {
            logger.critical(
                "cannot create the state directory \(settings.queue.stateDirectory): \(error.localizedDescription)")
            return 1
        }
        let database = Database(settings: settings.connection, label: "commands", logger: logger)
        guard await waitForDatabase(database, coordinator: coordinator, notifier: notifier, logger: logger) else {
            logger.info("stopped before the database was reachable")
            return 0
        }
        do {
            let migrations = try MigrationSet.find(explicit: settings.migrationsDirectory)
            let migrator = Migrator(database: database, migrations: migrations, logger: logger)
            if settings.autoMigrate {
                for step in try await migrator.migrate() { logger.info("applied migration \(step.migration)") }
            }
            try await migrator.requireCurrent()
        } catch let error as StorageError where error.code == .schemaMismatch || error.code == .missingResource {
            logger.critical("\(error.message)")
            notifier.notify("STATUS=refusing to start: \(error.message)")
            return configurationExitCode
        }

        let registry = makeRegistry(
            ExecutorEnvironment(
                stateDirectory: settings.queue.stateDirectory, registry: AdapterStore(database: database),
                cachedModels: settings.cachedModels, batchRows: settings.batchRows, roots: settings.roots,
                maxPromptBytes: settings.maxPromptBytes, memoryBudget: settings.memoryBudget,
                engineDefaults: settings.engineDefaults))
        let monitor = QueueMonitor()
        let doorbell = Doorbell()
        let jobs = JobStore(database: database)
        let workers = WorkerStore(database: database)
        let configuration = settings.queue
        let leases = Database(settings: settings.connection, label: "leases", logger: logger)
        let completions = Database(settings: settings.connection, label: "completions", logger: logger)
        // Every Database this daemon opens (LISTEN keeps a plain connection of its own): their usage is
        // logged at a clean stop and exported as metrics.
        var connections = [database, leases, completions]
        var services: [any Service] = [
            SystemdService(notifier: notifier, monitor: monitor, configuration: configuration, logger: logger),
            NotificationService(
                settings: settings.connection, store: jobs, configuration: configuration, monitor: monitor,
                doorbell: doorbell,
                logger: logger),
            WorkerPresence(
                identity: settings.identity, configuration: configuration, workers: workers, monitor: monitor,
                logger: logger),
            Rescuer(configuration: configuration, store: jobs, workers: workers, monitor: monitor, logger: logger),
            Cleaner(
                configuration: settings.cleaner, stateDirectory: configuration.stateDirectory, store: jobs,
                logger: logger),
            Scheduler(store: jobs, logger: logger),
            Producer(
                configuration: configuration, store: jobs, registry: registry, monitor: monitor, doorbell: doorbell,
                logger: logger,
                // Heartbeats on a connection of their own: never queued behind a claim or a job's final write.
                leaseStore: JobStore(database: leases),
                // Outcomes too: sharing "commands", claims and outcomes queued behind each other (bench-queue
                // at concurrency 4: half the connection's time was waiting; apart, ~45 % more jobs/s; issue 12).
                completionStore: JobStore(database: completions)),
        ]
        if let metrics = settings.metricsListen {
            let metricsDatabase = Database(settings: settings.connection, label: "metrics", logger: logger)
            connections.append(metricsDatabase)
            services.append(
                MetricsService(
                    host: metrics.host, port: metrics.port, database: metricsDatabase, connections: connections,
                    logger: logger))
        }
        var groupConfiguration = ServiceGroupConfiguration(services: services, logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(
            Int64((configuration.gracePeriodSeconds + configuration.stopTimeoutSeconds + 30) * 1000))
        let serviceGroup = ServiceGroup(configuration: groupConfiguration)
        await coordinator.attach(serviceGroup)
        try await serviceGroup.run()
        reportUsage(connections.map(\.usage), file: settings.connectionUsageFile, logger: logger)
        logger.info("muwad stopped cleanly")
        return 0
    }

    /// Logs each connection's usage (calls, queue wait versus run time) and writes it as JSON to `file`.
    private static func reportUsage(_ usages: [DatabaseUsage], file: String?, logger: Logger) {
        for usage in usages { logger.info("database connection usage: \(usage.summary)") }
        guard let file else { return }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(usages).write(to: URL(fileURLWithPath: file), options: .atomic)
        } catch {
            logger.warning("cannot write the connection usage to \(file): \(error.localizedDescription)")
        }
    }

    /// Retries `SELECT 1` with backoff until it works (true) or a shutdown is requested (false).
    private static func waitForDatabase(
        _ database: Database, coordinator: ShutdownCoordinator, notifier: SystemdNotifier, logger: Logger
    ) async -> Bool {
        var delay = 0.5
        var attempts = 0
        while true {
            if await coordinator.isRequested { return false }
            do {
                _ = try await database.execute("SELECT 1", statement: "ping")
                if attempts > 0 { logger.info("database reachable") }
                return true
            } catch {
                attempts += 1
                if attempts == 1 || attempts % 10 == 0 {
                    logger.warning("waiting for the database (attempt \(attempts)): \(error)")
                }
                notifier.notify("STATUS=waiting for the database: \(error)\nWATCHDOG=1")
            }
            let until = ContinuousClock.now + .milliseconds(Int64(delay * 1000))
            while ContinuousClock.now < until, !(await coordinator.isRequested) {
                try? await Task.sleep(for: .milliseconds(100))
            }
            delay = min(delay * 2, 15)
        }
    }
}

/// Hands the first signal to the service group, or remembers it while the group does not exist yet.
actor ShutdownCoordinator {
    private var group: ServiceGroup?
    private(set) var isRequested = false

    func attach(_ group: ServiceGroup) async {
        self.group = group
        if isRequested { await group.triggerGracefulShutdown() }
    }

    func requestShutdown() async {
        isRequested = true
        await group?.triggerGracefulShutdown()
    }
}
