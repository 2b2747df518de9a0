// CleanerSettings: --work-retention / MUWA_WORK_RETENTION, --job-retention / MUWA_JOB_RETENTION and
// --clean-interval / MUWA_CLEAN_INTERVAL, for the Cleaner service.
import ArgumentParser
import JobQueue

enum CleanerSettings {
    static func resolve(_ queue: QueueOptions, source: SettingsSource) throws -> CleanerConfiguration {
        let work = try source.seconds(
            queue.workRetention, env: "MUWA_WORK_RETENTION", default: CleanerConfiguration.standardWorkRetentionSeconds)
        let interval = try source.seconds(queue.cleanInterval, env: "MUWA_CLEAN_INTERVAL", default: 600)
        var jobs: Double?
        let raw = queue.jobRetention ?? source.value("MUWA_JOB_RETENTION")
        if let raw, !["none", "off", "forever"].contains(raw.lowercased()) {
            jobs = try source.seconds(queue.jobRetention, env: "MUWA_JOB_RETENTION", default: 0)
        }
        guard interval > 0 else { throw ValidationError("the clean interval must be positive, got \(interval) s") }
        if let jobs, jobs < 3600 {
            throw ValidationError("the job retention must be at least 1h (finished jobs are results), got \(jobs) s")
        }
        return CleanerConfiguration(workRetentionSeconds: work, jobRetentionSeconds: jobs, intervalSeconds: interval)
    }
}
