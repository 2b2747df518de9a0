// NotificationListener: LISTEN on a connection of its own. A blocking loop (run it on a dedicated thread)
// that waits in poll() on PQsocket, then PQconsumeInput/PQnotifies, and reconnects with backoff when the
// server goes away. Each (re)connection is reported, so the caller can look for work it may have missed.
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the listener saw.
public enum ListenerEvent: Sendable, Equatable {
    /// LISTEN is active (first time or after a reconnect): notifications may have been missed before.
    case connected
    case notification(PGNotification)
    /// The connection broke; the listener keeps trying to reconnect.
    case disconnected(String)
}

/// A LISTEN connection for some channels.
public struct NotificationListener: Sendable {
    public let settings: ConnectionSettings
    public let channels: [String]
    private let logger: Logger
    private let maximumBackoff: Double

    public init(settings: ConnectionSettings, channels: [String], logger: Logger, maximumBackoff: Double = 5) {
        var settings = settings
        settings.applicationName += "-listen"
        self.settings = settings
        self.channels = channels
        self.logger = logger
        self.maximumBackoff = maximumBackoff
    }

    /// Listens until `shouldStop()` returns true (checked at least every `tick` seconds). Blocking.
    public func run(tick: Double = 0.25, shouldStop: () -> Bool, onEvent: (ListenerEvent) -> Void) {
        var backoff = 0.1
        var connectedOnce = false
        while !shouldStop() {
            let connection: PGConnection
            do {
                connection = try PGConnection.connect(settings)
                for channel in channels {
                    try connection.executeScript("LISTEN \"\(channel)\"", statement: "LISTEN")
                }
            } catch {
                if connectedOnce || backoff <= 0.1 {
                    logger.debug("listener cannot connect: \(error)")
                }
                sleep(seconds: backoff * Double.random(in: 0.5...1.0), shouldStop: shouldStop)
                backoff = min(backoff * 2, maximumBackoff)
                continue
            }
            backoff = 0.1
            connectedOnce = true
            onEvent(.connected)
            let reason = listen(on: connection, tick: tick, shouldStop: shouldStop, onEvent: onEvent)
            if let reason {
                onEvent(.disconnected(reason))
            }
        }
    }

    /// Returns nil when asked to stop, or why the connection broke.
    private func listen(
        on connection: PGConnection, tick: Double, shouldStop: () -> Bool, onEvent: (ListenerEvent) -> Void
    ) -> String? {
        let timeout = Int32(max(1, tick * 1000))
        while !shouldStop() {
            var descriptor = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                return "poll failed: errno \(errno)"
            }
            if ready == 0 { continue }
            do {
                for notification in try connection.consumeNotifications() {
                    onEvent(.notification(notification))
                }
            } catch {
                return "\(error)"
            }
            if !connection.isOK { return "connection closed" }
        }
        return nil
    }

    private func sleep(seconds: Double, shouldStop: () -> Bool) {
        var left = seconds
        while left > 0, !shouldStop() {
            let step = min(left, 0.1)
            usleep(useconds_t(step * 1_000_000))
            left -= step
        }
    }
}
