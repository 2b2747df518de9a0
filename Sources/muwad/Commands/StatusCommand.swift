// muwad status: what the queue looks like now: workers, running jobs (progress, ETA, throughput, read from
// the jobs), queue depth per queue/kind/status, last failures.
import ArgumentParser
import Foundation
import Logging
import Storage

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show workers, queue depth and the last failures.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "How many recent failures to list.")
    var failures = 10

    func run() async throws {
        let source = try connection.source()
        LineLogHandler.bootstrap(level: .warning)
        let logger = Logger(label: "muwad")
        let database = Database(settings: connection.connectionSettings(source), label: "status", logger: logger)
        do {
            let workers = try await database.execute(.statusWorkers)
            print("WORKERS")
            printTable(
                ["worker", "state", "jobs", "seen", "status"],
                try workers.rows.map { row in
                    [
                        try row.string("id"), try row.string("state"), try row.text("current_jobs") ?? "",
                        String(format: "%.0fs ago", try row.double("seen_seconds_ago")), try row.string("status_line"),
                    ]
                })

            let running = try await database.execute(.statusRunningJobs, ["50"])
            print("\nRUNNING")
            printTable(
                ["job", "kind", "attempt", "progress", "eta", "tokens/s", "running", "heartbeat", "worker"],
                try running.rows.map { row in
                    let eta = try row.optionalDouble("eta_seconds")
                    let rate = try row.optionalDouble("tokens_per_second")
                    return [
                        String(try row.int("id")) + (try row.bool("cancel_requested") ? " (cancelling)" : ""),
                        try row.string("kind"), String(try row.int("attempt")),
                        String(format: "%.1f%%", try row.double("progress") * 100),
                        eta.map(Self.duration) ?? "-", rate.map { String(format: "%.1f", $0) } ?? "-",
                        Self.duration(try row.double("running_seconds")),
                        Self.duration(try row.double("heartbeat_seconds_ago")) + " ago", try row.string("worker_id"),
                    ]
                })

            let depth = try await database.execute(.statusQueueDepth)
            print("\nQUEUE DEPTH (live jobs, and jobs finished in the last 24 h)")
            printTable(
                ["queue", "kind", "status", "jobs", "later", "oldest wait"],
                try depth.rows.map { row in
                    [
                        try row.string("queue"), try row.string("kind"), try row.string("status"),
                        String(try row.int("jobs")), String(try row.int("scheduled_later")),
                        String(format: "%.0fs", try row.double("oldest_wait_seconds")),
                    ]
                })

            let failed = try await database.execute(.statusRecentFailures, [String(max(failures, 0))])
            print("\nLAST FAILURES")
            printTable(
                ["when", "job", "kind", "attempt", "now", "outcome", "error"],
                try failed.rows.map { row in
                    [
                        String(try row.string("finished_at").prefix(19)), String(try row.int("job_id")),
                        try row.string("kind"), "\(try row.int("attempt"))/\(try row.int("max_attempts"))",
                        try row.string("job_status"), try row.string("outcome"),
                        String(try row.string("error").prefix(100)),
                    ]
                })
        } catch let error as StorageError {
            if error.sqlState == "42P01" || error.sqlState == "3F000" {
                print("the muwa schema is missing or incomplete; run `muwad migrate` (\(error.message))")
            } else {
                print("cannot read the queue: \(error)")
            }
            throw ExitCode(1)
        }
    }

    /// "42s", "12m", "3.2h", "2.1d".
    static func duration(_ seconds: Double) -> String {
        if seconds < 120 { return String(format: "%.0fs", seconds) }
        if seconds < 7200 { return String(format: "%.0fm", seconds / 60) }
        if seconds < 172_800 { return String(format: "%.1fh", seconds / 3600) }
        return String(format: "%.1fd", seconds / 86400)
    }

    private func printTable(_ header: [String], _ rows: [[String]]) {
        guard !rows.isEmpty else {
            print("  (none)")
            return
        }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = min(max(widths[index], cell.count), 60)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print("  " + line(header))
        for row in rows { print("  " + line(row)) }
    }
}
