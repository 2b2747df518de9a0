// NotificationService: LISTEN muwa_jobs on a connection of its own (NotificationListener on a thread of its
// own). 'queued <queue> <kind>' rings the producer's doorbell when this worker serves that queue and kind;
// 'cancel <id>' makes the worker read that job's row (a guarded statement: id, worker, attempt, running) and
// stop the job only when the row says cancel_requested. Any role may send a notification on any channel, so a
// notification only ever wakes the worker; the row decides. After every (re)connection the doorbell rings
// too, since notifications sent while we were away are lost.
import Foundation
import Logging
import ServiceLifecycle
import Storage

/// Wakes the producer on new work and forwards cancel requests to running jobs.
public struct NotificationService: Service {
    /// The channel muwa.notify_jobs() sends on.
    public static let channel = "muwa_jobs"

    let listener: NotificationListener
    let store: JobStore
    let configuration: QueueConfiguration
    let monitor: QueueMonitor
    let doorbell: Doorbell
    let logger: Logger

    public init(
        settings: ConnectionSettings, store: JobStore, configuration: QueueConfiguration, monitor: QueueMonitor,
        doorbell: Doorbell, logger: Logger
    ) {
        var logger = logger
        logger[metadataKey: "service"] = "listener"
        self.listener = NotificationListener(settings: settings, channels: [Self.channel], logger: logger)
        self.store = store
        self.configuration = configuration
        self.monitor = monitor
        self.doorbell = doorbell
        self.logger = logger
    }

    public func run() async {
        let stop = Flag()
        let handler = EventHandler(
            store: store, configuration: configuration, monitor: monitor, doorbell: doorbell, logger: logger)
        let listener = self.listener
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                _ = try? await BlockingWork.run(label: "muwa-listen", stackSize: 1 << 20) {
                    listener.run(shouldStop: { stop.isSet }, onEvent: handler.handle)
                }
            } onCancel: {
                stop.set()
            }
        } onGracefulShutdown: {
            stop.set()
        }
    }
}

/// Turns listener events into doorbell rings and checks of cancel requests.
struct EventHandler: Sendable {
    let store: JobStore
    let configuration: QueueConfiguration
    let monitor: QueueMonitor
    let doorbell: Doorbell
    let logger: Logger

    func handle(_ event: ListenerEvent) {
        switch event {
        case .connected:
            logger.debug("listening on \(NotificationService.channel)")
            doorbell.ring()
        case .disconnected(let reason):
            logger.debug("listen connection lost: \(reason)")
        case .notification(let notification):
            let words = notification.payload.split(separator: " ").map(String.init)
            switch words.first {
            case "queued" where words.count == 3:
                if configuration.queues.contains(words[1]), configuration.kinds.contains(words[2]) {
                    doorbell.ring()
                }
            case "cancel" where words.count == 2:
                if let id = Int64(words[1]), let context = monitor.context(for: id), context.stopReason == nil {
                    checkCancel(context)
                }
            default:
                // Unknown payloads (a newer schema) still mean "something changed": look for work.
                doorbell.ring()
            }
        }
    }

    /// Reads the job's row and stops the job only when the row asks for it (the notification may be forged).
    /// Off the listener's thread; a failed read is left to the next heartbeat, which reads the same flag.
    private func checkCancel(_ context: JobContext) {
        let store = self.store
        let logger = self.logger
        Task {
            do {
                guard try await store.cancelRequested(context.job.lease) else {
                    logger.notice(
                        "ignored a 'cancel \(context.job.id)' notification: the job's row does not ask for a cancel")
                    return
                }
                guard context.stopReason == nil else { return }
                context.logger.notice("cancel requested; stopping at the next safe point")
                context.requestStop(.cancelRequested)
            } catch {
                logger.debug("cannot check the cancel request of job \(context.job.id) (the heartbeat will): \(error)")
            }
        }
    }
}
