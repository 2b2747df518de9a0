// Scheduler: enqueues the jobs of muwa.schedules (migrations/0009) at their cron times. Every round, inside
// one transaction, it locks the due schedules (FOR UPDATE SKIP LOCKED: another worker's round skips them),
// enqueues one job per due schedule with the unique key schedule:<name>:<time>, and moves next_run_at to the
// next cron time after now — missed times are not caught up. A schedule whose cron cannot be read is
// disabled with the reason in last_error.
import Foundation
import Logging
import ServiceLifecycle
import Storage

public struct Scheduler: Service {
    let store: JobStore
    let intervalSeconds: Double
    let logger: Logger

    public init(store: JobStore, intervalSeconds: Double = 15, logger: Logger) {
        self.store = store
        self.intervalSeconds = intervalSeconds
        var logger = logger
        logger[metadataKey: "service"] = "scheduler"
        self.logger = logger
    }

    public func run() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await tickOnce()
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .milliseconds(Int64(intervalSeconds * 1000)))
                }
            } catch {
                return
            }
        }
    }

    /// One round; returns the ids of the jobs it enqueued.
    @discardableResult
    public func tickOnce() async -> [Int64] {
        do {
            let library = try SQLLibrary.shared()
            let due = try library.sql(for: .schedulesDue)
            let enqueue = try library.sql(for: .scheduleEnqueue)
            let advance = try library.sql(for: .scheduleAdvance)
            let logger = self.logger
            let enqueued = try await store.database.transaction { connection -> [Int64] in
                var enqueued: [Int64] = []
                for row in try connection.execute(due, ["100"], statement: "SchedulesDue").rows {
                    let name = try row.string("name")
                    let now = Date(timeIntervalSince1970: try row.double("now_epoch"))
                    let schedule: CronSchedule
                    do {
                        schedule = try CronSchedule(try row.string("cron"))
                    } catch {
                        logger.error("schedule \(name) is disabled: \(error)")
                        _ = try connection.execute(advance, [name, nil, nil, "\(error)"], statement: "ScheduleAdvance")
                        continue
                    }
                    var jobID: Int64?
                    if let time = try row.optionalDouble("next_run_epoch"), try row.bool("due") {
                        let result = try connection.execute(
                            enqueue,
                            [
                                name, String(Int64(time)), try row.string("kind"), try row.string("payload"),
                                try row.string("queue"), String(try row.int("priority")),
                                String(try row.int("max_attempts")),
                            ],
                            statement: "ScheduleEnqueue")
                        jobID = try result.first.map { Int64(try $0.int("id")) }
                        if let jobID {
                            enqueued.append(jobID)
                            logger.info("schedule \(name) enqueued job \(jobID)")
                        }
                    }
                    guard let next = schedule.next(after: now) else {
                        let why = "cron \(schedule) matches no time in the next 5 years"
                        logger.error("schedule \(name) is disabled: \(why)")
                        _ = try connection.execute(
                            advance, [name, nil, jobID.map { String($0) }, why], statement: "ScheduleAdvance")
                        continue
                    }
                    _ = try connection.execute(
                        advance, [name, String(next.timeIntervalSince1970), jobID.map { String($0) }, nil],
                        statement: "ScheduleAdvance")
                }
                return enqueued
            }
            return enqueued
        } catch {
            logger.warning("scheduling round failed (retried next round): \(error)")
            return []
        }
    }
}
