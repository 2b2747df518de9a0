// SystemdService: the daemon's conversation with systemd. READY=1 when it starts (the daemon is connected
// and its schema checked by then), STATUS= whenever the worker's status line changes, WATCHDOG=1 while the
// producer's loop keeps ticking (a database outage does not stop the loop, so it never gets a running
// fine-tune killed), and while draining STOPPING=1 plus EXTEND_TIMEOUT_USEC so systemd waits for the
// grace period and checkpoints instead of killing the process.
import Foundation
import JobQueue
import Logging
import ServiceLifecycle

struct SystemdService: Service {
    let notifier: SystemdNotifier
    let monitor: QueueMonitor
    let configuration: QueueConfiguration
    let logger: Logger

    func run() async {
        notifier.notify("READY=1\nSTATUS=\(monitor.statusLine)\nMAINPID=\(getpid())")
        logger.debug("told systemd READY=1")
        let watchdog = notifier.watchdogInterval
        // Ping the watchdog every third of its interval (checked twice as often, so timer phase cannot
        // stretch the gap); look at the status line at least every half second.
        let tick = min(0.5, (watchdog ?? 3) / 6)
        var lastStatus = ""
        var lastWatchdog = ContinuousClock.now - .seconds(3600)
        var sentStopping = false
        var lastExtend = ContinuousClock.now - .seconds(3600)
        let drainBudget = configuration.gracePeriodSeconds + configuration.stopTimeoutSeconds + 15
        var drainStarted: ContinuousClock.Instant?

        while !Task.isCancelled {
            var messages: [String] = []
            let status = monitor.statusLine
            if status != lastStatus {
                messages.append("STATUS=\(status)")
                lastStatus = status
            }
            if let watchdog, ContinuousClock.now - lastWatchdog >= .milliseconds(Int64(watchdog * 1000 / 3)) {
                // Alive means: the producer loop turned recently (it ticks at least every poll interval and
                // every database call is bounded by connect and keepalive timeouts).
                if monitor.phase != .running || monitor.sinceLastTick < .milliseconds(Int64(watchdog * 1000)) {
                    messages.append("WATCHDOG=1")
                    lastWatchdog = .now
                } else {
                    logger.error(
                        "the producer loop has not ticked for \(monitor.sinceLastTick); not feeding the watchdog")
                }
            }
            let phase = monitor.phase
            if phase == .draining || phase == .stopped || Task.isShuttingDownGracefully {
                if !sentStopping {
                    messages.append("STOPPING=1")
                    sentStopping = true
                    drainStarted = .now
                }
                if let started = drainStarted, ContinuousClock.now - lastExtend >= .seconds(1) {
                    let used = ContinuousClock.now - started
                    let left = max(5, drainBudget - Double(used.components.seconds))
                    messages.append("EXTEND_TIMEOUT_USEC=\(Int64(left * 1_000_000))")
                    lastExtend = .now
                }
            }
            if !messages.isEmpty {
                notifier.notify(messages.joined(separator: "\n"))
            }
            if Task.isShuttingDownGracefully, phase == .stopped {
                break
            }
            try? await Task.sleep(for: .milliseconds(Int64(tick * 1000)))
        }
        notifier.notify("STATUS=stopped")
    }
}
