// SystemdNotifier: sd_notify(3) by hand. A datagram with "KEY=VALUE\n…" to the AF_UNIX socket named in
// $NOTIFY_SOCKET; a leading '@' means the Linux abstract namespace (the '@' becomes a NUL byte). Without
// $NOTIFY_SOCKET (not under systemd) every call is a no-op. The watchdog interval comes from
// $WATCHDOG_USEC, honoured only when $WATCHDOG_PID is unset or names this process.
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct SystemdNotifier: Sendable {
    let socketPath: String?
    /// Half of systemd's recommendation: send WATCHDOG=1 at least this often (seconds); nil = no watchdog.
    let watchdogInterval: Double?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketPath = path
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0,
            environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true
        {
            watchdogInterval = usec / 1_000_000
        } else {
            watchdogInterval = nil
        }
    }

    var isEnabled: Bool { socketPath != nil }

    /// Sends one notification ("READY=1", "STATUS=…", or several joined by newlines). Returns false when not
    /// under systemd or the send failed (never fatal: systemd notifications are best effort).
    @discardableResult
    func notify(_ message: String) -> Bool {
        guard let socketPath else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        // Abstract addresses are exactly as long as their bytes; path addresses may include the NUL.
        let length =
            MemoryLayout<sa_family_t>.size + pathBytes.count
            + (pathBytes.first == 0 ? 0 : 1)

        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let payload = Array(message.utf8)
        let sent = payload.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    sendto(
                        descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), socketAddress,
                        socklen_t(length))
                }
            }
        }
        return sent == payload.count
    }
}
