// The Prometheus endpoint of a real daemon: jobs by state from the database, recent durations, muwa_up, the
// worker's own connection usage; other paths get 404; a bad listen address stops the daemon at start with a
// sentence.
import Foundation
import XCTest
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

final class MetricsTests: XCTestCase {
    static let name = "muwa_t_metrics"

    /// A port nobody listens on now (bound to 0 and released).
    func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw XCTSkip("cannot bind a loopback port here") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// GET `path` from 127.0.0.1:`port`: the whole response, or nil when nothing listens.
    func get(_ path: String, port: UInt16) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var data = [UInt8](), buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    func testTheEndpointServesTheQueuesState() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{}')") ?? "?"
        let port = try freePort()
        let daemon = try DaemonProcess(settings, name: "metrics", arguments: ["--metrics-listen", "127.0.0.1:\(port)"])
        try await eventually(20, daemon.log) {
            try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "succeeded"
        }
        var body: String?
        try await eventually(10, daemon.log) {
            body = self.get("/metrics", port: port)
            return body != nil
        }
        let text = try XCTUnwrap(body)
        XCTAssertTrue(text.hasPrefix("HTTP/1.0 200 OK"), text)
        XCTAssertTrue(text.contains("# TYPE muwa_jobs gauge"), text)
        XCTAssertTrue(text.contains(#"muwa_jobs{queue="default",kind="ping",status="succeeded"} 1.0"#), text)
        XCTAssertTrue(text.contains(#"muwa_recent_jobs{kind="ping",status="succeeded"} 1.0"#), text)
        XCTAssertTrue(text.contains("\nmuwa_up 1\n"), text)
        // This worker's own connections: the finished job's outcome went through "completions".
        XCTAssertTrue(text.contains("# TYPE muwa_db_wait_seconds_total counter"), text)
        for connection in ["commands", "leases", "completions", "metrics"] {
            XCTAssertTrue(text.contains(#"muwa_db_run_seconds_total{connection="\#(connection)"} "#), text)
        }
        let completionCalls = text.split(separator: "\n")
            .first { $0.hasPrefix(#"muwa_db_calls_total{connection="completions"} "#) }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
        XCTAssertGreaterThanOrEqual(completionCalls ?? 0, 1, text)
        XCTAssertTrue(get("/", port: port)?.hasPrefix("HTTP/1.0 404") == true)
        await daemon.stop()

        let bad = try DaemonProcess(settings, name: "metrics-bad", arguments: ["--metrics-listen", "localhost"])
        let status = await bad.waitForExit(seconds: 15)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(bad.log.contains("metrics listen address must be HOST:PORT"), bad.log)
    }
}
