// systemd/muwad.env.example shows each setting's default commented out (`#MUWA_KEY=value`): every one of
// those values must be what `muwad serve` really uses when the setting is absent.
import Foundation
import JobQueue
import XCTest

@testable import muwad

final class EnvExampleTests: XCTestCase {
    static let examplePath = Harness.repositoryRoot.appendingPathComponent("systemd/muwad.env.example").path

    /// The commented-out `#MUWA_KEY=value` lines of the env example.
    func documentedDefaults() throws -> [(key: String, value: String)] {
        try String(contentsOfFile: Self.examplePath, encoding: .utf8).split(separator: "\n").compactMap { line in
            guard line.hasPrefix("#MUWA_"), let equals = line.firstIndex(of: "=") else { return nil }
            return (
                String(line[line.index(after: line.startIndex)..<equals]), String(line[line.index(after: equals)...])
            )
        }
    }

    func testEveryDocumentedDefaultIsTheRealDefault() throws {
        let state = "/var/lib/muwad"
        let settings = try ServeSettings.resolve(
            connection: try ConnectionOptions.parse([]), queue: try QueueOptions.parse(["--state-dir", state]),
            servedKinds: ["generate", "finetune", "evaluate", "ping"])
        let q = settings.queue
        func seconds(_ text: String) -> Double? { parseDuration(text) }
        // What each documented value must equal; keys without an entry fail the test (add them here).
        let checks: [String: (String) -> Bool] = [
            "MUWA_DATABASE_URL": { _ in true },  // an example, not a default
            "MUWA_MEMORY_LIMIT": { _ in true },  // an example: the default is detected (cgroup, then memory)
            "MUWA_QUEUES": { $0 == q.queues.joined(separator: ",") },
            "MUWA_KINDS": { $0 == q.kinds.joined(separator: ",") },
            "MUWA_CONCURRENCY": { Int($0) == q.concurrency },
            "MUWA_BATCH_ROWS": { Int($0) == settings.batchRows },
            "MUWA_CACHED_MODELS": { Int($0) == settings.cachedModels },
            "MUWA_LEASE": { seconds($0) == q.leaseSeconds },
            "MUWA_HEARTBEAT": { seconds($0) == q.heartbeatSeconds },
            "MUWA_RESCUE_INTERVAL": { seconds($0) == q.rescueIntervalSeconds },
            "MUWA_POLL_INTERVAL": { seconds($0) == q.pollSeconds },
            "MUWA_RETRY_BASE": { seconds($0) == q.retryPolicy.baseSeconds },
            "MUWA_RETRY_MAX": { seconds($0) == q.retryPolicy.maximumSeconds },
            "MUWA_GRACE_PERIOD": { seconds($0) == q.gracePeriodSeconds },
            "MUWA_STOP_TIMEOUT": { seconds($0) == q.stopTimeoutSeconds },
            "MUWA_STATE_DIR": { $0 == q.stateDirectory },
            "MUWA_WORK_RETENTION": { seconds($0) == settings.cleaner.workRetentionSeconds },
            "MUWA_JOB_RETENTION": { $0 == "none" && settings.cleaner.jobRetentionSeconds == nil },
            "MUWA_CLEAN_INTERVAL": { seconds($0) == settings.cleaner.intervalSeconds },
            "MUWA_MODEL_ROOTS": {
                $0.split(separator: ":").map(String.init) == [state, "/srv/muwa"] && settings.roots.models?.count == 2
            },
            "MUWA_DATA_ROOTS": {
                $0.split(separator: ":").map(String.init) == [state, "/srv/muwa"] && settings.roots.data?.count == 2
            },
            "MUWA_MAX_PROMPT_BYTES": { Int($0) == settings.maxPromptBytes },
            "MUWA_COMPUTE": { $0 == settings.engineDefaults.compute.rawValue },
            "MUWA_MIGRATIONS_DIR": { _ in true },  // the unit sets it; without it muwad uses the built-in set
            "MUWA_LOG_LEVEL": { $0 == "\(settings.logLevel)" },
            "MUWA_LOG_FORMAT": { $0 == settings.logFormat.rawValue },
            "MUWA_METRICS_LISTEN": { $0.isEmpty && settings.metricsListen == nil },
            "MUWA_AUTO_MIGRATE": { ($0 == "true") == settings.autoMigrate },
            "MUWA_DEFAULT_TIME_LIMIT": { seconds($0) == q.defaultTimeLimitSeconds },
            "MUWA_MAX_LOST_RUNS": { Int($0) == q.maxLostRuns },
        ]
        let documented = try documentedDefaults()
        XCTAssertGreaterThan(documented.count, 15)
        for (key, value) in documented {
            guard let check = checks[key] else {
                XCTFail("\(key) is documented in the env example but not checked here")
                continue
            }
            XCTAssertTrue(check(value), "\(key)=\(value) in the env example is not muwad's default")
        }
    }
}
