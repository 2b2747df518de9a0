// MetricsService: a Prometheus text endpoint (`--metrics-listen 127.0.0.1:9464`, MUWA_METRICS_LISTEN; off by
// default). GET /metrics answers with what the queue looks like, read from the database at scrape time, so
// every worker shows the same numbers and none keeps state:
//
//   muwa_jobs{queue,kind,status}                         jobs per state (live, and finished in the last 24 h)
//   muwa_recent_jobs{kind,status}                        jobs finished in the last hour, and
//   muwa_recent_job_duration_seconds_sum{kind,status}    the sum of their run times (claim to finish)
//   muwa_running_job_progress{job,kind}                  0…1, and where the executor reports them:
//   muwa_running_job_tokens_per_second{job,kind}, muwa_running_job_eta_seconds{job,kind},
//   muwa_train_loss{job}                                 the latest step loss of running fine-tunes
//   muwa_up                                              1 when the database answered the scrape
//
// and, this process's own (per worker, since it started), for each of its database connections:
//   muwa_db_calls_total{connection}, muwa_db_wait_seconds_total{connection}   calls, time queued for the connection
//   muwa_db_run_seconds_total{connection}, muwa_db_max_wait_seconds{connection} time on it, the longest queueing
//
// A plain HTTP/1.0 responder on a thread of its own (accept is blocking); one request per connection, read
// with a 2 s timeout, at most 8 KiB. Anything but GET /metrics gets 404.
import Foundation
import Logging
import ServiceLifecycle
import Storage

#if canImport(Glibc)
    import Glibc
#endif

struct MetricsService: Service {
    let host: String
    let port: UInt16
    let database: Database
    /// This daemon's connections, whose usage each scrape reports.
    let connections: [Database]
    let logger: Logger

    /// "HOST:PORT" (IPv4); nil for an empty setting.
    static func parse(_ setting: String) throws -> (host: String, port: UInt16)? {
        let trimmed = setting.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed != "off" else { return nil }
        guard let colon = trimmed.lastIndex(of: ":"), let port = UInt16(trimmed[trimmed.index(after: colon)...]),
            port > 0
        else {
            throw MetricsError("metrics listen address must be HOST:PORT such as 127.0.0.1:9464, got \"\(setting)\"")
        }
        var address = in_addr()
        let host = String(trimmed[..<colon])
        guard inet_pton(AF_INET, host, &address) == 1 else {
            throw MetricsError("metrics listen host must be an IPv4 address such as 127.0.0.1, got \"\(host)\"")
        }
        return (host, port)
    }

    struct MetricsError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    func run() async throws {
        let fd = try listen()
        logger.info("metrics at http://\(host):\(port)/metrics")
        let thread = Thread { serve(fd) }
        thread.name = "muwa-metrics"
        thread.start()
        // Until shutdown; closing the socket ends the accept loop.
        try? await gracefulShutdown()
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func listen() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MetricsError("cannot open the metrics socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MetricsError("cannot listen for metrics on \(host):\(port): \(reason)")
        }
        return fd
    }

    private func serve(_ listener: Int32) {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // closed at shutdown
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let request = readRequest(client)
            let response: String
            if request.hasPrefix("GET /metrics ") || request.hasPrefix("GET /metrics?") {
                let body = scrape()
                response =
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                    + body
            } else {
                response = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            }
            var bytes = Array(response.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes {
                    write(client, $0.baseAddress.map { $0 + offset }, $0.count - offset)
                }
                if written <= 0 { break }
                offset += written
            }
            close(client)
        }
    }

    private func readRequest(_ fd: Int32) -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1024)
        while data.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data += buffer[0..<n]
            if data.count >= 4, data.suffix(4) == [13, 10, 13, 10] { break }
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The exposition text, from the database (waited for on this thread, not on the cooperative pool).
    private func scrape() -> String {
        let box = ResultBox()
        let semaphore = DispatchSemaphore(value: 0)
        let database = self.database
        let usages = connections.map(\.usage)
        Task {
            box.text = try? await MetricsText.render(database: database, connections: usages)
            semaphore.signal()
        }
        if semaphore.wait(timeout: .now() + 10) == .timedOut { return "muwa_up 0\n" }
        return box.text ?? "muwa_up 0\n"
    }

    private final class ResultBox: @unchecked Sendable {
        var text: String?
    }
}

/// The Prometheus text for the queue's current state.
enum MetricsText {
    static func render(database: Database, connections: [DatabaseUsage] = []) async throws -> String {
        var out: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            out.append("# HELP \(name) \(help)")
            out.append("# TYPE \(name) \(type)")
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
            let text = labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
            out.append("\(name)\(labels.isEmpty ? "" : "{\(text)}") \(value)")
        }
        let depth = try await database.execute(.statusQueueDepth)
        family("muwa_jobs", "gauge", "Jobs per queue, kind and status (live, and finished in the last 24 h).")
        for row in depth.rows {
            sample(
                "muwa_jobs",
                [
                    ("queue", try row.string("queue")), ("kind", try row.string("kind")),
                    ("status", try row.string("status")),
                ], Double(try row.int("jobs")))
        }
        let recent = try await database.execute(.statusRecentDurations, ["3600"])
        family("muwa_recent_jobs", "gauge", "Jobs finished in the last hour.")
        for row in recent.rows {
            sample(
                "muwa_recent_jobs", [("kind", try row.string("kind")), ("status", try row.string("status"))],
                Double(try row.int("jobs")))
        }
        family(
            "muwa_recent_job_duration_seconds_sum", "gauge",
            "Run time (claim to finish) of the jobs finished in the last hour.")
        for row in recent.rows {
            sample(
                "muwa_recent_job_duration_seconds_sum",
                [("kind", try row.string("kind")), ("status", try row.string("status"))],
                try row.double("seconds"))
        }
        let running = try await database.execute(.statusRunningJobs, ["500"])
        family("muwa_running_job_progress", "gauge", "Progress (0 to 1) of each running job.")
        for row in running.rows {
            sample(
                "muwa_running_job_progress", [("job", String(try row.int("id"))), ("kind", try row.string("kind"))],
                try row.double("progress"))
        }
        family("muwa_running_job_tokens_per_second", "gauge", "Tokens per second of running jobs that report them.")
        for row in running.rows {
            guard let rate = try row.optionalDouble("tokens_per_second") else { continue }
            sample(
                "muwa_running_job_tokens_per_second",
                [("job", String(try row.int("id"))), ("kind", try row.string("kind"))], rate)
        }
        family("muwa_running_job_eta_seconds", "gauge", "Estimated seconds left of running jobs.")
        for row in running.rows {
            guard let eta = try row.optionalDouble("eta_seconds") else { continue }
            sample(
                "muwa_running_job_eta_seconds", [("job", String(try row.int("id"))), ("kind", try row.string("kind"))],
                eta)
        }
        family("muwa_train_loss", "gauge", "Latest training loss of running fine-tunes.")
        for row in running.rows where try row.string("kind") == "finetune" {
            guard let loss = try row.optionalDouble("loss") else { continue }
            sample("muwa_train_loss", [("job", String(try row.int("id")))], loss)
        }
        let perConnection: [(String, String, String, (DatabaseUsage) -> Double)] = [
            ("muwa_db_calls_total", "counter", "Calls on this worker's database connection.", { Double($0.calls) }),
            (
                "muwa_db_wait_seconds_total", "counter", "Seconds calls waited for the (serialized) connection.",
                \.waitSeconds
            ),
            ("muwa_db_run_seconds_total", "counter", "Seconds calls ran on the connection.", \.runSeconds),
            ("muwa_db_max_wait_seconds", "gauge", "The longest wait of one call for the connection.", \.maxWaitSeconds),
        ]
        for (name, type, help, value) in perConnection where !connections.isEmpty {
            family(name, type, help)
            for usage in connections { sample(name, [("connection", usage.label)], value(usage)) }
        }
        family("muwa_up", "gauge", "1 when the database answered this scrape.")
        out.append("muwa_up 1")
        return out.joined(separator: "\n") + "\n"
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
