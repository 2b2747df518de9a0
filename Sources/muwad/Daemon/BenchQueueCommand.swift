// muwad bench-queue: the queue's own overhead, measured with real daemons. Starts N `muwad serve`
// processes on a private queue, enqueues a batch of no-op ping jobs with one INSERT, and reports from
// muwa.job_runs: jobs/s (first enqueue to last finish), claim-to-finish time per job (claim, run, record),
// and the idle pickup latency of single jobs woken by NOTIFY. Cleans up its jobs afterwards.
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
        let migrations = try MigrationSet.load(directory: try MigrationSet.locate(explicit: connection.migrationsFolder(source)))
        try await Migrator(database: database, migrations: migrations, logger: logger).requireCurrent()
        guard workers >= 1, concurrency >= 1, jobs >= 1 else { throw ValidationError("workers, concurrency and jobs must be ≥ 1") }

        let queue = "bench-\(getpid())"
        print("bench-queue: \(jobs) ping jobs, \(workers) worker(s) × concurrency \(concurrency), queue \(queue)")
        if finishedRows > 0 {
            print("  adding \(finishedRows) finished rows to muwa.jobs …")
            _ = try await database.execute(
                """
                INSERT INTO muwa.jobs (kind, queue, status, attempt, started_at, finished_at)
                SELECT 'ping', $1, 'succeeded', 1, now(), now() FROM generate_series(1, $2::int)
                """, [queue, String(finishedRows)])
            _ = try await database.execute("ANALYZE muwa.jobs")
        }
        let daemons = try startDaemons(queue: queue, settings: settings)
        defer { stop(daemons) }
        try await waitForWorkers(database, queue: queue, count: workers)

        // The batch.
        _ = try await database.execute(
            "INSERT INTO muwa.jobs (kind, queue, payload) SELECT 'ping', $1, '{}' FROM generate_series(1, $2::int)",
            [queue, String(jobs)])
        try await waitUntilDone(database, queue: queue, expected: jobs + finishedRows, daemons: daemons)
        let batch = try await database.execute(
            """
            SELECT count(*) AS jobs,
                   extract(epoch FROM max(r.finished_at) - min(j.created_at))::float8 AS span,
                   avg(extract(epoch FROM r.finished_at - r.started_at))::float8 AS mean,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - r.started_at)) AS p99,
                   count(*) FILTER (WHERE r.outcome <> 'succeeded') AS bad
            FROM muwa.job_runs r JOIN muwa.jobs j ON j.id = r.job_id
            WHERE j.queue = $1 AND j.payload = '{}'
            """, [queue])
        if let row = batch.first {
            let span = try row.double("span")
            print(String(format: "  throughput:       %.0f jobs/s (%d jobs in %.2f s, first enqueue to last finish)",
                         Double(try row.int("jobs")) / span, try row.int("jobs"), span))
            print(String(format: "  claim-to-finish:  mean %.2f ms, p50 %.2f ms, p99 %.2f ms per job (claim, run, record)",
                         try row.double("mean") * 1000, try row.double("p50") * 1000, try row.double("p99") * 1000))
            if try row.int("bad") > 0 { print("  WARNING: \(try row.int("bad")) runs did not succeed") }
        }

        // Single jobs on idle workers: the LISTEN/NOTIFY path.
        if singleJobs > 0 {
            for index in 0..<singleJobs {
                let id = try await database.execute(
                    "INSERT INTO muwa.jobs (kind, queue, payload) VALUES ('ping', $1, jsonb_build_object('single', $2::int)) RETURNING id",
                    [queue, String(index)]).first?.int("id") ?? 0
                try await waitForJob(database, id: id)
                try await Task.sleep(for: .milliseconds(20))
            }
            let single = try await database.execute(
                """
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.started_at - j.created_at)) AS pickup,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - j.created_at)) AS total
                FROM muwa.job_runs r JOIN muwa.jobs j ON j.id = r.job_id
                WHERE j.queue = $1 AND j.payload ? 'single'
                """, [queue])
            if let row = single.first {
                print(String(format: "  idle pickup:      p50 %.2f ms enqueue → claimed, p50 %.2f ms enqueue → finished (%d single jobs)",
                             try row.double("pickup") * 1000, try row.double("total") * 1000, singleJobs))
            }
        }
        _ = try await database.execute("DELETE FROM muwa.jobs WHERE queue = $1", [queue])
        _ = try await database.execute("DELETE FROM muwa.workers WHERE $1 = ANY (queues)", [queue])
    }

    private func startDaemons(queue: String, settings: ConnectionSettings) throws -> [Process] {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let invocation = Self.daemonInvocation(
            queue: queue, concurrency: concurrency, settings: settings,
            migrationsDirectory: connection.migrationsDirectory, environment: ProcessInfo.processInfo.environment)
        return try (0..<workers).map { _ in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = invocation.arguments
            process.environment = invocation.environment
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
            let ready = try await database.execute(
                "SELECT count(*) AS n FROM muwa.workers WHERE state = 'running' AND $1 = ANY (queues)", [queue])
            if try ready.first?.int("n") ?? 0 >= count { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ValidationError("the bench daemons did not start within 30 s")
    }

    private func waitUntilDone(_ database: Database, queue: String, expected: Int, daemons: [Process]) async throws {
        while true {
            let done = try await database.execute(
                "SELECT count(*) AS n FROM muwa.jobs WHERE queue = $1 AND status = 'succeeded'", [queue])
            if try done.first?.int("n") ?? 0 >= expected { return }
            guard daemons.allSatisfy(\.isRunning) else { throw ValidationError("a bench daemon exited early") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func waitForJob(_ database: Database, id: Int) async throws {
        for _ in 0..<2000 {
            let status = try await database.execute("SELECT status FROM muwa.jobs WHERE id = $1", [String(id)])
            if try status.first?.string("status") == "succeeded" { return }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw ValidationError("single job \(id) did not finish within seconds")
    }
}
