// SQLLibrary: the named statements of Sources/Storage/SQL/*.sql, loaded once from the resource bundle.
// A file holds blocks introduced by `-- name: StatementName`; the comment lines right under the name
// document the statement. `SQLStatement` lists every name the code uses, and loading fails with a clear
// message when one is missing, so a typo shows at start-up rather than mid-job.
import Foundation

/// Every named statement the Swift code runs.
public enum SQLStatement: String, CaseIterable, Sendable {
    // jobs.sql
    case jobClaim = "JobClaim"
    case jobHeartbeat = "JobHeartbeat"
    case jobFinish = "JobFinish"
    case jobFail = "JobFail"
    case jobRelease = "JobRelease"
    case jobState = "JobState"
    case jobRescueExpired = "JobRescueExpired"
    case jobCancelRequested = "JobCancelRequested"
    // workers.sql
    case workerRegister = "WorkerRegister"
    case workerUpdate = "WorkerUpdate"
    case workerMarkLost = "WorkerMarkLost"
    case workerPrune = "WorkerPrune"
    // migrator.sql
    case migratorLock = "MigratorLock"
    case migratorUnlock = "MigratorUnlock"
    case migratorBootstrap = "MigratorBootstrap"
    case migratorHasTable = "MigratorHasTable"
    case migratorApplied = "MigratorApplied"
    case migratorRecord = "MigratorRecord"
    case migratorForget = "MigratorForget"
    // status.sql
    case statusWorkers = "StatusWorkers"
    case statusQueueDepth = "StatusQueueDepth"
    case statusRecentFailures = "StatusRecentFailures"
    case statusRunningJobs = "StatusRunningJobs"

    case jobEventsAppend = "JobEventsAppend"
    case adapterLookup = "AdapterLookup"
    case adapterVersionLookup = "AdapterVersionLookup"
}

/// Named SQL statements parsed from `.sql` text.
public struct SQLLibrary: Sendable {
    private let statements: [String: String]

    /// Parses `-- name:` blocks out of the given files' contents.
    public init(files: [(name: String, text: String)]) throws {
        var statements: [String: String] = [:]
        for file in files {
            var currentName: String?
            var lines: [String] = []
            func flush() throws {
                guard let name = currentName else { return }
                let body = lines.joined(separator: "\n").trimmingWhitespace()
                guard !body.isEmpty else {
                    throw StorageError(.missingResource, "\(file.name): statement \(name) is empty")
                }
                guard statements[name] == nil else {
                    throw StorageError(.missingResource, "\(file.name): statement \(name) is defined twice")
                }
                statements[name] = body
            }
            for line in file.text.split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("-- name:") {
                    try flush()
                    currentName = trimmed.dropFirst("-- name:".count).trimmingCharacters(in: .whitespaces)
                    lines = []
                } else if currentName != nil, !trimmed.hasPrefix("--") {
                    lines.append(String(line))
                }
            }
            try flush()
        }
        self.statements = statements
    }

    /// The SQL text of a named statement.
    public func sql(for statement: SQLStatement) throws -> String {
        guard let sql = statements[statement.rawValue] else {
            throw StorageError(.missingResource, "no SQL statement named \(statement.rawValue) in the SQL resources")
        }
        return sql
    }

    /// Names defined in the files but unknown to ``SQLStatement`` (dead SQL), and the reverse.
    public func mismatches() -> (unused: [String], missing: [String]) {
        let known = Set(SQLStatement.allCases.map(\.rawValue))
        return (
            statements.keys.filter { !known.contains($0) }.sorted(),
            known.filter { statements[$0] == nil }.sorted()
        )
    }

    // MARK: - The bundled library

    private static let bundled: Result<SQLLibrary, StorageError> = Result {
        guard let directory = Bundle.module.url(forResource: "SQL", withExtension: nil) else {
            throw StorageError(.missingResource, "the SQL resource folder is missing from \(Bundle.module.bundlePath)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        let files = try names.map { name in
            (name: name, text: try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8))
        }
        let library = try SQLLibrary(files: files)
        let missing = library.mismatches().missing
        guard missing.isEmpty else {
            throw StorageError(.missingResource, "SQL resources lack statements: \(missing.joined(separator: ", "))")
        }
        return library
    }.mapError { error in
        (error as? StorageError) ?? StorageError(.missingResource, "cannot read the SQL resources: \(error)")
    }

    /// The library bundled with the Storage target (loaded once).
    public static func shared() throws -> SQLLibrary {
        try bundled.get()
    }
}
