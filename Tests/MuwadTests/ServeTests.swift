// `muwad migrate`, `serve` and `status` as separate processes: jobs go in with SQL and come back with
// results and errors; serve refuses an older schema; cancel reaches a running job; a database that is
// not there yet is waited for.
import Foundation
import Storage
import XCTest
import TestSupport

final class ServeTests: XCTestCase {
    static let name = "muwa_t_serve"

    func testMigrateTwiceThenServePingJobsAndShowStatus() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let again = try Harness.runMuwad(["migrate", "--database-url", settings.conninfo])
        XCTAssertEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("the database is up to date"), again.output)
        do {
            _ = try await database.execute(
                "SELECT muwa.enqueue('ping', jsonb_build_object('n', i)) FROM generate_series(1, 20) i")
            _ = try await database.execute(
                #"SELECT muwa.enqueue('ping', '{"fail": "disk on fire"}', max_attempts => 2)"#)
            _ = try await database.execute(
                #"INSERT INTO muwa.jobs (kind, payload) VALUES ('ping', '{"plain": "insert"}')"#)
        }
        let daemon = try DaemonProcess(settings, name: "serve", arguments: ["--concurrency", "4"])
        do {
            try await eventually(20, daemon.log) {
                try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status IN ('succeeded', 'failed')")
                    == "22"
            }
            let mismatched = try await database.scalar(
                "SELECT count(*) FROM muwa.jobs WHERE status = 'succeeded' AND result IS DISTINCT FROM payload")
            XCTAssertEqual(mismatched, "0", "ping returns its payload")
            let failure = try await database.firstRow(
                "SELECT status, attempt, jsonb_array_length(errors) AS n, errors->1->>'message' AS message FROM muwa.jobs WHERE payload ? 'fail'"
            )
            XCTAssertEqual(try failure.string("status"), "failed")
            XCTAssertEqual(try failure.int("attempt"), 2)
            XCTAssertEqual(try failure.int("n"), 2)
            XCTAssertEqual(try failure.string("message"), "disk on fire")
        }
        let status = try Harness.runMuwad(["status", "--database-url", settings.conninfo])
        XCTAssertEqual(status.status, 0, status.output)
        XCTAssertTrue(status.output.contains("WORKERS") && status.output.contains(":\(daemon.pid):"), status.output)
        XCTAssertTrue(status.output.contains("succeeded  21"), status.output)
        XCTAssertTrue(status.output.contains("disk on fire"), status.output)
        XCTAssertTrue(daemon.log.contains("job=1 kind=ping: job succeeded"), daemon.log)
        await daemon.stop()
        do {
            let state = try await database.scalar("SELECT state FROM muwa.workers")
            XCTAssertEqual(state, "stopped")
        }
    }

    /// A copied binary, with no build folder, resource bundle or migrations beside it, still migrates and
    /// answers (issue 11.6): its SQL is compiled in.
    func testACopiedBinaryNeedsNothingBesideIt() async throws {
        let settings = try TestDatabase.fresh(Self.name + "_copied")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-copied-\(getpid())").path
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: try Harness.binary(), toPath: folder + "/muwad")
        var environment = Harness.cleanEnvironment([:])
        environment.removeValue(forKey: "MUWA_MIGRATIONS_DIR")
        func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try Harness.runProgram(folder + "/muwad", arguments, environment: environment, currentDirectory: folder)
        }
        let version = try run(["--version"])
        XCTAssertEqual(version.status, 0, version.output)
        XCTAssertEqual(version.output.trimmingCharacters(in: .whitespacesAndNewlines), "0.1.0")
        let migrate = try run(["migrate", "--database-url", settings.conninfo])
        XCTAssertEqual(migrate.status, 0, migrate.output)
        XCTAssertTrue(migrate.output.contains("applied  0001_jobs"), migrate.output)
        let status = try run(["status", "--database-url", settings.conninfo])
        XCTAssertEqual(status.status, 0, status.output)
        XCTAssertTrue(status.output.contains("QUEUE DEPTH"), status.output)
    }

    func testServeRefusesAnOlderSchemaAndNamesTheMissingMigration() async throws {
        let settings = try TestDatabase.fresh(Self.name)
        let partial = try Harness.runMuwad(["migrate", "--database-url", settings.conninfo, "--to", "3"])
        XCTAssertEqual(partial.status, 0, partial.output)
        let daemon = try DaemonProcess(settings, name: "old-schema")
        let status = await daemon.waitForExit(seconds: 15)
        XCTAssertEqual(status, 78)
        XCTAssertTrue(daemon.log.contains("migration 0004_dashboard_views is missing"), daemon.log)
        XCTAssertTrue(daemon.log.contains("muwad migrate"), daemon.log)
    }

    func testCancelStopsARunningJobAndKeepsItsPartialResult() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        let daemon = try DaemonProcess(settings, name: "cancel")
        do {
            let id = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"sleep_ms": 60000, "tag": "long"}')"#)
            try await eventually(10, daemon.log) {
                try await database.scalar("SELECT progress > 0 FROM muwa.jobs WHERE id = $1", [id]) == "t"
            }
            // `muwad status` lists it under RUNNING with its progress and an ETA read from the job row.
            try await eventually(10, daemon.log) {
                try await database.scalar("SELECT progress_detail ? 'eta_seconds' FROM muwa.jobs WHERE id = $1", [id])
                    == "t"
            }
            let status = try Harness.runMuwad(["status", "--database-url", settings.conninfo])
            let runningLine = status.output.split(separator: "\n").first {
                $0.hasPrefix("  \(id ?? "?") ") && $0.contains(" ping ") && $0.contains("%")
            }
            XCTAssertNotNil(runningLine, status.output)
            XCTAssertTrue(status.output.contains("RUNNING"), status.output)
            XCTAssertTrue(runningLine?.contains("%") == true && runningLine?.contains(" ago") == true, status.output)
            let columns = runningLine?.split(separator: " ") ?? []  // job kind attempt progress eta tokens/s …
            XCTAssertTrue(columns.count > 4 && columns[4] != "-", "no ETA: \(status.output)")
            let answer = try await database.scalar("SELECT muwa.cancel($1::bigint)", [id])
            XCTAssertEqual(answer, "cancel_requested")
            // The job would sleep 60 s: seeing it cancelled (its own outcome, written by the worker) within the
            // deadline shows it stopped at its next safe point.
            try await eventually(30, daemon.log) {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id]) == "cancelled"
            }
            let kept = try await database.scalar("SELECT result->>'tag' FROM muwa.jobs WHERE id = $1", [id])
            XCTAssertEqual(kept, "long")
            // The daemon goes on serving.
            let next = try await database.scalar("SELECT muwa.enqueue('ping', '{}')")
            try await eventually(10, daemon.log) {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [next]) == "succeeded"
            }
        }
        await daemon.stop()
    }

    func testWaitsForAnUnreachableDatabaseAndStillStopsCleanly() async throws {
        _ = try TestDatabase.server()
        let nowhere = ConnectionSettings(conninfo: "host=/nonexistent-muwa-test port=1 dbname=x connect_timeout=1")
        let daemon = try DaemonProcess(nowhere, name: "nowhere")
        try await eventually(30, daemon.log) { daemon.log.contains("waiting for the database") }
        XCTAssertTrue(daemon.isRunning, "a transient error never makes it exit; log:\n\(daemon.log)")
        await daemon.stop()
    }
}
