// Cleaner: the queue's housekeeping (cf. river's job_cleaner, Oban's pruner). Every `interval` it
//
//   - removes the work directories (<state>/jobs/<id>: checkpoints, saved samples) of jobs that finished
//     more than `workRetention` ago, and of jobs whose row is gone once the directory is that old;
//   - deletes finished jobs older than `jobRetention` (with their outputs, runs and events), when set —
//     by default rows are kept for ever: they are the results dashboards read.
//
// Queued and running jobs are never touched: only rows with a finished_at qualify, and a directory of a job
// whose row exists but has not finished stays. Failures are logged and retried next round.
import Foundation
import Logging
import ServiceLifecycle
import Storage

/// Retention settings of the cleaner.
public struct CleanerConfiguration: Sendable, Equatable {
    /// How long a finished job's work directory stays (MUWA_WORK_RETENTION, default 7 days).
    public var workRetentionSeconds: Double
    /// How long finished job rows stay; nil keeps them (MUWA_JOB_RETENTION, default: keep).
    public var jobRetentionSeconds: Double?
    /// Time between rounds (MUWA_CLEAN_INTERVAL, default 10 minutes).
    public var intervalSeconds: Double

    public static let standardWorkRetentionSeconds: Double = 7 * 86_400

    public init(
        workRetentionSeconds: Double = CleanerConfiguration.standardWorkRetentionSeconds,
        jobRetentionSeconds: Double? = nil, intervalSeconds: Double = 600
    ) {
        self.workRetentionSeconds = workRetentionSeconds
        self.jobRetentionSeconds = jobRetentionSeconds
        self.intervalSeconds = intervalSeconds
    }
}

public struct Cleaner: Service {
    let configuration: CleanerConfiguration
    let stateDirectory: String
    let store: JobStore
    let logger: Logger

    public init(configuration: CleanerConfiguration, stateDirectory: String, store: JobStore, logger: Logger) {
        self.configuration = configuration
        self.stateDirectory = stateDirectory
        self.store = store
        var logger = logger
        logger[metadataKey: "service"] = "cleaner"
        self.logger = logger
    }

    public func run() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await cleanOnce()
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .milliseconds(Int64(configuration.intervalSeconds * 1000)))
                }
            } catch {
                return
            }
        }
    }

    /// One round. Returns what it removed (for tests and the log).
    @discardableResult
    public func cleanOnce() async -> (directories: [Int64], jobs: Int) {
        var removedDirectories: [Int64] = []
        var prunedJobs = 0
        do {
            removedDirectories = try await removeExpiredWorkDirectories()
            if let retention = configuration.jobRetentionSeconds {
                var batch: [Int64]
                repeat {
                    batch = try await store.pruneFinished(olderThan: retention, limit: 1000)
                    prunedJobs += batch.count
                } while batch.count == 1000 && !Task.isCancelled
            }
        } catch {
            logger.warning("cleaning failed (retried next round): \(error)")
        }
        if !removedDirectories.isEmpty || prunedJobs > 0 {
            logger.info("removed \(removedDirectories.count) work directories and \(prunedJobs) finished jobs")
        }
        return (removedDirectories, prunedJobs)
    }

    private func removeExpiredWorkDirectories() async throws -> [Int64] {
        let jobs = stateDirectory + "/jobs"
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: jobs)) ?? []
        let ids = names.compactMap { Int64($0) }.filter { $0 > 0 }
        guard !ids.isEmpty else { return [] }
        var removed: [Int64] = []
        for chunk in stride(from: 0, to: ids.count, by: 1000).map({ Array(ids[$0..<min($0 + 1000, ids.count)]) }) {
            let expiry = try await store.workExpiry(ids: chunk, olderThan: configuration.workRetentionSeconds)
            for id in chunk {
                let path = jobs + "/\(id)"
                let expired: Bool
                if let known = expiry[id] {
                    expired = known
                } else {  // the row is gone: go by the directory's own age
                    let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date
                    expired =
                        modified.map { Date().timeIntervalSince($0) > configuration.workRetentionSeconds } ?? false
                }
                guard expired else { continue }
                do {
                    try fm.removeItem(atPath: path)
                    removed.append(id)
                } catch {
                    logger.warning("cannot remove the work directory \(path): \(error.localizedDescription)")
                }
            }
        }
        return removed
    }
}
