// DaemonHarness: spawns the real `muwad` binary (built next to this test bundle) as separate processes
// against a fresh database per test class, with short leases and polls, and reads the database directly
// to check what happened. Without MUWA_TEST_DATABASE_URL the tests skip locally and fail under CI=true.
import Foundation
import Logging
import Storage
import XCTest
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

enum Harness {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// The muwad executable: $MUWA_BINARY, or the one beside this test bundle.
    static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["MUWA_BINARY"], !path.isEmpty { return path }
        let bundleFolder = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
        var candidates = [bundleFolder.appendingPathComponent("muwad").path]
        candidates += Bundle.allBundles.map {
            URL(fileURLWithPath: $0.bundlePath).deletingLastPathComponent().appendingPathComponent("muwad").path
        }
        candidates.append(repositoryRoot.appendingPathComponent(".build/debug/muwad").path)
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw HarnessError(
                description: "muwad binary not found (looked at \(candidates)); build it or set MUWA_BINARY")
        }
        return found
    }

    static var quietLogger: Logger { TestDatabase.quietLogger }

    /// A fresh database migrated by `muwad migrate`.
    static func migratedDatabase(_ name: String, encoding: String = "UTF8") throws -> (ConnectionSettings, Database) {
        let settings = try TestDatabase.fresh(name, encoding: encoding)
        let result = try runMuwad(["migrate", "--database-url", settings.conninfo])
        guard result.status == 0 else {
            throw HarnessError(description: "muwad migrate failed (\(result.status)): \(result.output)")
        }
        return (settings, Database(settings: settings, label: name, logger: quietLogger))
    }

    /// Runs muwad to completion and returns its exit status and combined output.
    static func runMuwad(_ arguments: [String], timeout: Double = 60, environment: [String: String] = [:]) throws
        -> (status: Int32, output: String)
    {
        try runMuwadAt(try binary(), arguments, environment: environment)
    }

    /// Runs the muwad binary at `path` to completion.
    static func runMuwadAt(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, output: String)
    {
        try runProgram(path, arguments, environment: cleanEnvironment(environment))
    }

    /// Runs any program to completion with exactly `environment`; its exit status and combined output.
    static func runProgram(
        _ path: String, _ arguments: [String], environment: [String: String],
        currentDirectory: String? = nil
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The inherited environment without anything that would change muwad's behaviour, plus `extra`.
    static func cleanEnvironment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("MUWA_") && !key.hasPrefix("PG")
                && !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"].contains(key)
        }
        environment["MUWA_MIGRATIONS_DIR"] = repositoryRoot.appendingPathComponent("migrations").path
        environment.merge(extra) { _, new in new }
        return environment
    }

    /// Short timings: lease 2 s renewed every 0.5 s, poll 0.2 s, rescue every 0.3 s, retry after 0.2 s.
    static let fastSettings: [String: String] = [
        "MUWA_LEASE": "2s", "MUWA_HEARTBEAT": "500ms", "MUWA_POLL_INTERVAL": "200ms", "MUWA_RESCUE_INTERVAL": "300ms",
        "MUWA_RETRY_BASE": "200ms", "MUWA_RETRY_MAX": "1s", "MUWA_GRACE_PERIOD": "3s", "MUWA_STOP_TIMEOUT": "2s",
        "MUWA_LOG_LEVEL": "info",
        // Exact f32 products: these tests compare values with the f32 fixtures (the product default is auto).
        "MUWA_COMPUTE": "f32",
        // Payload paths: the committed fixtures and the tests' scratch directories.
        "MUWA_MODEL_ROOTS": testRoots, "MUWA_DATA_ROOTS": testRoots,
    ]

    static let testRoots = [
        repositoryRoot.appendingPathComponent("Tests/Fixtures").path, FileManager.default.temporaryDirectory.path,
    ].joined(separator: ":")
}

/// One `muwad serve` process.
final class DaemonProcess {
    let process = Process()
    let logPath: String
    private let startedAt = Date()

    /// Starts `muwad serve` against `settings` with `Harness.fastSettings` overridden by `environment`.
    init(_ settings: ConnectionSettings, name: String, arguments: [String] = [], environment: [String: String] = [:])
        throws
    {
        logPath =
            FileManager.default.temporaryDirectory.appendingPathComponent("muwad-test-\(name)-\(getpid()).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: try Harness.binary())
        process.arguments = ["serve", "--database-url", settings.conninfo] + arguments
        var extra = Harness.fastSettings
        extra["MUWA_STATE_DIR"] = FileManager.default.temporaryDirectory.appendingPathComponent("muwad-test-state").path
        extra.merge(environment) { _, new in new }
        process.environment = Harness.cleanEnvironment(extra)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits up to `seconds` for the process to exit; returns its status (128+n for a signal), or nil.
    func waitForExit(seconds: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        guard !process.isRunning else { return nil }
        return process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// SIGTERM, then wait; fails the test when it does not exit 0 in time.
    func stop(file: StaticString = #filePath, line: UInt = #line) async {
        signal(SIGTERM)
        let status = await waitForExit(seconds: 20)
        XCTAssertEqual(status, 0, "muwad did not exit cleanly; log:\n\(log.suffix(3000))", file: file, line: line)
    }

    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }
}

extension Database {
}

/// Polls `condition` every 50 ms for up to `seconds`; fails the test (with `context`) when it never holds.
func eventually(
    _ seconds: Double = 15, _ context: @autoclosure () -> String = "", file: StaticString = #filePath,
    line: UInt = #line,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    XCTFail("condition not met within \(seconds) s. \(context())", file: file, line: line)
    throw HarnessError(description: "timed out")
}
