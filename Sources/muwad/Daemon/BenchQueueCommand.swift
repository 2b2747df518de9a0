// muwad bench-queue: the queue's own overhead, measured with real daemons. Starts N `muwad serve`
// processes on a private queue, enqueues a batch of no-op ping jobs with one INSERT, and reports from
// muwa.job_runs: jobs/s (first enqueue to last finish), claim-to-finish time per job (claim, run, record),
// and the idle pickup latency of single jobs woken by NOTIFY. Cleans up its jobs afterwards. Then it stops the
// daemons and prints how their database connections were shared (each writes its DatabaseUsage to a file
// named by MUWA_CONNECTION_USAGE_FILE when it stops): calls, time queued for the serial connection versus
// time running on it, so contention on the shared "commands" connection shows as wait (issue 12).
import ArgumentParser
import Foundation
import Logging
import Storage

struct BenchQueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-queue", abstract: "Measure the job queue's overhead with ping jobs and real daemons.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Daemon processes to start.")
    var workers = 1

    @Option(help: "Jobs each daemon runs at once.")
    var concurrency = 1

    @Option(help: "Ping jobs in the batch.")
    var jobs = 2000

    @Option(name: .customLong("single-jobs"), help: "Jobs enqueued one at a time to measure idle pickup latency.")
    var singleJobs = 20

    @Option(name: .customLong("finished-rows"), help: "Finished rows to add to muwa.jobs first (claims among history).")
    var finishedRows = 0

    func run() async throws {
        let source = try connection.source()
        LineLogHandler.bootstrap(level: .warning)
        let logger = Logger(label: "muwad")
        let settings = connection.connectionSettings(source)
        let database = Database(settings: settings, label: "bench", logger: logger)
        let migrations = try MigrationSet.find(explicit: connection.migrationsFolder(source))
        try await Migrator(database: database, migrations: migrations, logger: logger).requireCurrent()
        guard workers >= 1, concurrency >= 1, jobs >= 1 else {
            throw ValidationError("workers, concurrency and jobs must be ≥ 1")
        }

        let queue = "bench-\(getpid())"
        print("bench-queue: \(jobs) ping jobs, \(workers) worker(s) × concurrency \(concurrency), queue \(queue)")
        if finishedRows > 0 {
            print("  adding \(finishedRows) finished rows to muwa.jobs …")
            _ = try await database.execute(.benchFillFinished, [queue, String(finishedRows)])
            _ = try await database.execute(.benchAnalyzeJobs)
        }
        let usageFiles = (0..<workers).map {
            FileManager.default.temporaryDirectory.appendingPathComponent("muwa-\(queue)-\($0)-usage.json").path
        }
        let daemons = try startDaemons(queue: queue, settings: settings, usageFiles: usageFiles)
        defer { stop(daemons) }
        try await waitForWorkers(database, queue: queue, count: workers)

        // The batch.
        _ = try await database.execute(.benchEnqueueBatch, [queue, String(jobs)])
        try await waitUntilDone(database, queue: queue, expected: jobs + finishedRows, daemons: daemons)
        let batch = try await database.execute(.benchBatchFigures, [queue])
        var meanClaimToFinishSeconds = 0.0
        if let row = batch.first {
            meanClaimToFinishSeconds = try row.double("mean")
            let span = try row.double("span")
            print(
                String(
                    format: "  throughput:       %.0f jobs/s (%d jobs in %.2f s, first enqueue to last finish)",
                    Double(try row.int("jobs")) / span, try row.int("jobs"), span))
            print(
                String(
                    format:
                        "  claim-to-finish:  mean %.2f ms, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms per job (claim, run, record)",
                    try row.double("mean") * 1000, try row.double("p50") * 1000, try row.double("p95") * 1000,
                    try row.double("p99") * 1000))
            if try row.int("bad") > 0 { print("  WARNING: \(try row.int("bad")) runs did not succeed") }
        }

        // Single jobs on idle workers: the LISTEN/NOTIFY path.
        if singleJobs > 0 {
            for index in 0..<singleJobs {
                let id = try await database.execute(.benchEnqueueSingle, [queue, String(index)]).first?.int("id") ?? 0
                try await waitForJob(database, id: id)
                try await Task.sleep(for: .milliseconds(20))
            }
            let single = try await database.execute(.benchSingleFigures, [queue])
            if let row = single.first {
                print(
                    String(
                        format:
                            "  idle pickup:      p50 %.2f ms enqueue → claimed, p50 %.2f ms enqueue → finished (%d single jobs)",
                        try row.double("pickup") * 1000, try row.double("total") * 1000, singleJobs))
            }
        }
        _ = try await database.execute(.benchDeleteJobs, [queue])
        _ = try await database.execute(.benchDeleteWorkers, [queue])
        stop(daemons)
        printUsage(files: usageFiles, batchJobs: jobs, meanClaimToFinishSeconds: meanClaimToFinishSeconds)
    }

    /// The daemons' connection usage, summed per label over the daemons. It covers each daemon's whole life
    /// (start-up, the batch, the single jobs, idle polls), so the batch dominates only for a large --jobs.
    private func printUsage(files: [String], batchJobs: Int, meanClaimToFinishSeconds: Double) {
        var usages: [DatabaseUsage] = []
        for file in files {
            defer { try? FileManager.default.removeItem(atPath: file) }
            guard let data = FileManager.default.contents(atPath: file),
                let decoded = try? JSONDecoder().decode([DatabaseUsage].self, from: data)
            else {
                print("  connections:      a daemon left no usage file (\(file)); it did not stop cleanly")
                return
            }
            usages += decoded
        }
        print("  connections (summed over \(files.count) daemon(s), whole run):")
        var labels: [String] = []
        for usage in usages where !labels.contains(usage.label) { labels.append(usage.label) }
        for label in labels {
            let combined = DatabaseUsage.combined(usages.filter { $0.label == label }, label: label)
            print("    \(combined.summary)")
            // A claim's wait comes before claim-to-finish starts, a completion's inside it: the wait per batch
            // job bounds what this connection's queueing adds to a job.
            if combined.calls > 0, meanClaimToFinishSeconds > 0 {
                let perJobSeconds = combined.waitSeconds / Double(batchJobs)
                print(
                    String(
                        format: "      wait per batch job: %.3f ms (%.0f %% of the mean claim-to-finish)",
                        perJobSeconds * 1000, perJobSeconds / meanClaimToFinishSeconds * 100))
            }
        }
    }

    private func startDaemons(queue: String, settings: ConnectionSettings, usageFiles: [String]) throws -> [Process] {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let invocation = Self.daemonInvocation(
            queue: queue, concurrency: concurrency, settings: settings,
            migrationsDirectory: connection.migrationsDirectory, environment: ProcessInfo.processInfo.environment)
        return try usageFiles.map { usageFile in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = invocation.arguments
            process.environment = invocation.environment.merging(["MUWA_CONNECTION_USAGE_FILE": usageFile]) { $1 }
            try process.run()
            return process
        }
    }

    /// The command line and environment of one bench daemon. The connection string travels in the
    /// environment (MUWA_DATABASE_URL), never on the command line: any local user can read a process's
    /// arguments (ps, /proc/PID/cmdline), and the string may hold a password.
    static func daemonInvocation(
        queue: String, concurrency: Int, settings: ConnectionSettings, migrationsDirectory: String?,
        environment: [String: String]
    ) -> (arguments: [String], environment: [String: String]) {
        var arguments = [
            "serve", "--queues", queue, "--kinds", "ping", "--concurrency", String(concurrency),
            "--poll-interval", "1s", "--log-level", "warning",
        ]
        if let migrationsDirectory { arguments += ["--migrations-dir", migrationsDirectory] }
        var childEnvironment = environment
        if !settings.conninfo.isEmpty { childEnvironment["MUWA_DATABASE_URL"] = settings.conninfo }
        return (arguments, childEnvironment)
    }

    private func stop(_ daemons: [Process]) {
        for daemon in daemons where daemon.isRunning { kill(daemon.processIdentifier, SIGTERM) }
        for daemon in daemons { daemon.waitUntilExit() }
    }

    private func waitForWorkers(_ database: Database, queue: String, count: Int) async throws {
        for _ in 0..<600 {
            let ready = try await database.execute(.benchWorkersReady, [queue])
            if try ready.first?.int("n") ?? 0 >= count { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ValidationError("the bench daemons did not start within 30 s")
    }

    private func waitUntilDone(_ database: Database, queue: String, expected: Int, daemons: [Process]) async throws {
        while true {
            let done = try await database.execute(.benchSucceeded, [queue])
            if try done.first?.int("n") ?? 0 >= expected { return }
            guard daemons.allSatisfy(\.isRunning) else { throw ValidationError("a bench daemon exited early") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func waitForJob(_ database: Database, id: Int) async throws {
        for _ in 0..<2000 {
            let status = try await database.execute(.benchJobStatus, [String(id)])
            if try status.first?.string("status") == "succeeded" { return }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw ValidationError("single job \(id) did not finish within seconds")
    }
}
