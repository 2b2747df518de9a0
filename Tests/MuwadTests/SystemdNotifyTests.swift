// sd_notify: the daemon's datagrams, received on a socket the test binds (abstract namespace and a path):
// READY=1 once connected, STATUS= naming the running job, WATCHDOG=1 at the watchdog's pace, and
// STOPPING=1 with EXTEND_TIMEOUT_USEC while draining.
import Foundation
import Storage
import XCTest
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A bound AF_UNIX datagram socket collecting messages on a thread of its own.
final class NotifySocket: @unchecked Sendable {
    let address: String
    private let descriptor: Int32
    private let lock = NSLock()
    private var messages: [String] = []
    private var closed = false

    /// `address` starting with "@" binds in the abstract namespace.
    init(address: String) throws {
        self.address = address
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessError(description: "socket() failed") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 } else { unlink(address) }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw HarnessError(description: "bind(\(address)) failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread { [self] in receive() }.start()
    }

    deinit {
        close(descriptor)
        if !address.hasPrefix("@") { unlink(address) }
    }

    func shutdown() { lock.withLock { closed = true } }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !lock.withLock({ closed }) {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count > 0 {
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                lock.withLock { messages.append(text) }
            }
        }
    }

    /// Every line received so far ("READY=1", "STATUS=…").
    var lines: [String] {
        lock.withLock { messages.flatMap { $0.split(separator: "\n").map(String.init) } }
    }

    func count(_ prefix: String) -> Int { lines.filter { $0.hasPrefix(prefix) }.count }
}

final class SystemdNotifyTests: XCTestCase {
    static let name = "muwa_t_notify"

    func testNotificationsOverAnAbstractSocket() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let socket = try NotifySocket(address: "@muwa-test-notify-\(getpid())")
        defer { socket.shutdown() }
        let daemon = try DaemonProcess(
            settings, name: "notify",
            environment: ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "600000", "MUWA_GRACE_PERIOD": "5s"])
        try await eventually(10, daemon.log) { socket.count("READY=1") == 1 }
        XCTAssertTrue(socket.lines.contains("MAINPID=\(daemon.pid)"), "\(socket.lines)")
        let watchdogBefore = socket.count("WATCHDOG=1")
        try await eventually(30, "\(socket.lines)") { socket.count("WATCHDOG=1") - watchdogBefore >= 3 }
        XCTAssertTrue(socket.lines.contains("STATUS=idle, waiting for jobs"), "\(socket.lines)")

        let id = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 1500}')"#) ?? "?"
        try await eventually(10, "\(socket.lines)") {
            socket.lines.contains { $0.hasPrefix("STATUS=running: job \(id) (ping") }
        }
        daemon.signal(SIGTERM)
        let status = await daemon.waitForExit(seconds: 10)
        XCTAssertEqual(status, 0, daemon.log)
        let lines = socket.lines
        XCTAssertEqual(lines.filter { $0 == "STOPPING=1" }.count, 1, "\(lines)")
        let extend = lines.first { $0.hasPrefix("EXTEND_TIMEOUT_USEC=") }
        let microseconds = extend.flatMap { Int($0.dropFirst("EXTEND_TIMEOUT_USEC=".count)) } ?? 0
        XCTAssertGreaterThan(microseconds, 5_000_000, "covers the grace period: \(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("STATUS=draining (1 job left)") }, "\(lines)")
        XCTAssertEqual(lines.last, "STATUS=stopped")
        let finished = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
        XCTAssertEqual(finished, "succeeded")
    }

    func testNotificationsOverAPathSocketAndNoWatchdogWithoutWatchdogUsec() async throws {
        let (settings, _) = try Harness.migratedDatabase(Self.name)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-notify-\(getpid()).sock").path
        let socket = try NotifySocket(address: path)
        defer { socket.shutdown() }
        let daemon = try DaemonProcess(settings, name: "notify-path", environment: ["NOTIFY_SOCKET": path])
        try await eventually(10, daemon.log) { socket.count("READY=1") == 1 }
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(socket.count("WATCHDOG=1"), 0)
        await daemon.stop()
        XCTAssertEqual(socket.count("STOPPING=1"), 1, "\(socket.lines)")
    }
}
