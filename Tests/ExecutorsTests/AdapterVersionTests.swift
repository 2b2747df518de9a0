// Adapter names cannot be hijacked: a second fine-tune with the same `output` adds version 2 beside version 1
// (never overwriting it), `name` resolves to the newest and `name@N` to a fixed version — through
// muwa.adapters / muwa.adapter_versions with a database and through <state>/adapters/ without one — the
// registry records who replaced what, and "if_exists": "fail" refuses before training starts.
import Foundation
import JobQueue
import Logging
import Storage
import XCTest

@testable import Executors
import TestSupport

final class AdapterVersionTests: XCTestCase {
    static let databaseName = "muwa_t_adapter_versions"
    var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "muwa-versions-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    static var quietLogger: Logger { TestDatabase.quietLogger }

    /// A fresh, migrated database on the test server (skip without one, fail under CI=true).
    static func migratedDatabase() async throws -> Database { try await TestDatabase.migrated(databaseName) }

    func dataset() throws -> String {
        let path = scratch + "/dolly.jsonl"
        let lines = (0..<8).map { i in
            #"{"instruction": "Say \#(i).", "context": "", "response": "number \#(i) river", "category": "open_qa"}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func payload(_ dataset: String, extra: [String: JSONValue] = [:]) -> JSONValue {
        var object: [String: JSONValue] = [
            "base_model": .string(EvalFixtures.model("pre-ln-f32")), "dataset": ["path": .string(dataset)],
            "output": "tiny",
            "train": [
                "max_steps": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                "warmup_steps": 0, "max_length": 64, "log_every": 1, "save_every": 50,
            ],
        ]
        for (key, value) in extra { object[key] = value }
        return .object(object)
    }

    /// Runs the fine-tune executor on `job` as the daemon would.
    func execute(_ job: ClaimedJob, state: String, registry: (any AdapterRegistry)?) async throws -> JobOutcome {
        let environment = ExecutorEnvironment(stateDirectory: state, registry: registry)
        let context = JobContext(job: job, stateDirectory: state, logger: Self.quietLogger)
        return try await FineTuneJobExecutor(environment: environment).execute(job, context: context)
    }

    func testWithoutADatabaseVersionsLiveSideBySide() async throws {
        let state = scratch + "/state"
        let data = try dataset()
        var results: [JSONValue?] = []
        for id in 1...2 {
            let job = ClaimedJob(
                lease: JobLease(jobID: Int64(id), workerID: "t", attempt: 1), kind: "finetune", payload: payload(data))
            guard case .succeeded(let result, _) = try await execute(job, state: state, registry: nil) else {
                return XCTFail("fine-tune \(id) failed")
            }
            results.append(result)
        }
        XCTAssertEqual(results.map { $0?["version"]?.doubleValue }, [1, 2])
        let v1 = try XCTUnwrap(
            FileManager.default.contents(atPath: state + "/adapters/tiny@1/adapter_model.safetensors"))
        XCTAssertNotNil(FileManager.default.contents(atPath: state + "/adapters/tiny@2/adapter_model.safetensors"))
        XCTAssertEqual(AdapterProvenance.read(directory: state + "/adapters/tiny@1")?.jobID, 1, "version 1 untouched")

        let locations = Locations(stateDirectory: state)
        let newest = try await locations.adapter("tiny", field: "adapter", kind: "generate")
        XCTAssertEqual(newest.directory, state + "/adapters/tiny@2")
        let pinned = try await locations.adapter("tiny@1", field: "adapter", kind: "generate")
        XCTAssertEqual(pinned.directory, state + "/adapters/tiny@1")
        XCTAssertEqual(FileManager.default.contents(atPath: pinned.directory + "/adapter_model.safetensors"), v1)
        for bad in ["tiny@3", "tiny@0", "tiny@x", "tiny@"] {
            do {
                _ = try await locations.adapter(bad, field: "adapter", kind: "generate")
                XCTFail("\(bad) resolved")
            } catch let failure as JobFailure {
                XCTAssertFalse(failure.retryable)
                XCTAssertTrue(failure.message.contains("adapter"), failure.message)
            }
        }

        // "if_exists": "fail" refuses before training: no version 3, no work directory.
        let refused = ClaimedJob(
            lease: JobLease(jobID: 3, workerID: "t", attempt: 1), kind: "finetune",
            payload: payload(data, extra: ["if_exists": "fail"]))
        do {
            _ = try await execute(refused, state: state, registry: nil)
            XCTFail("expected a refusal")
        } catch let failure as JobFailure {
            XCTAssertFalse(failure.retryable)
            XCTAssertTrue(
                failure.message.contains("adapter \"tiny\" already exists (version 2, made by job 2)"), failure.message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/adapters/tiny@3"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/jobs/3/checkpoints"), "nothing trained")
        // A name nobody used yet is fine with if_exists fail.
        let fresh = ClaimedJob(
            lease: JobLease(jobID: 4, workerID: "t", attempt: 1), kind: "finetune",
            payload: payload(data, extra: ["if_exists": "fail", "output": "other"]))
        guard case .succeeded = try await execute(fresh, state: state, registry: nil) else {
            return XCTFail("other failed")
        }
        XCTAssertTrue(Locations.isDirectory(state + "/adapters/other@1"))
    }

    func testTheRegistryKeepsEveryVersionAndWhoReplacedIt() async throws {
        let database = try await Self.migratedDatabase()
        try await TestDatabase.createLogin("muwa_t_carol", in: "muwa_enqueuer", on: database)
        let carol = TestDatabase.connect(database, as: "muwa_t_carol")
        let store = JobStore(database: database)
        let registry = AdapterStore(database: database)
        let state = scratch + "/state"
        let data = try dataset()
        var ids: [String] = []
        for (round, enqueuer) in [database, carol].enumerated() {
            let id = try unwrapped(
                try await enqueuer.execute(
                    "SELECT muwa.enqueue('finetune', $1::jsonb) AS id", [payload(data).jsonText]
                ).first?.text("id"))
            ids.append(id)
            let job = try unwrapped(
                try await store.claim(
                    queues: ["default"], kinds: ["finetune"], limit: 1, workerID: "w", leaseSeconds: 60
                ).first)
            guard case .succeeded(let result, let outputs) = try await execute(job, state: state, registry: registry)
            else {
                return XCTFail("fine-tune \(round + 1) failed")
            }
            let finished = try await store.finish(job.lease, status: .succeeded, result: result, outputs: outputs)
            XCTAssertTrue(finished)
        }
        let newest = try await database.execute(
            "SELECT version, path, job_id::text AS job, enqueued_by, previous_version, previous_job_id::text AS previous FROM muwa.adapters WHERE name = 'tiny'"
        )
        let row = try XCTUnwrap(newest.first)
        XCTAssertEqual(try row.int("version"), 2)
        XCTAssertEqual(try row.string("path"), state + "/adapters/tiny@2")
        XCTAssertEqual(try row.text("job"), ids[1])
        XCTAssertEqual(try row.text("enqueued_by"), "muwa_t_carol")
        XCTAssertEqual(try row.int("previous_version"), 1)
        XCTAssertEqual(try row.text("previous"), ids[0])
        let history = try await database.execute(
            """
            SELECT version, path, job_id::text AS job, replaced_at IS NOT NULL AS replaced, replaced_by_job_id::text AS by_job,
                   replaced_by_role FROM muwa.adapter_versions WHERE name = 'tiny' ORDER BY version
            """)
        XCTAssertEqual(try history.rows.map { try $0.int("version") }, [1, 2])
        XCTAssertEqual(try history.rows[0].string("path"), state + "/adapters/tiny@1")
        XCTAssertTrue(try history.rows[0].bool("replaced"))
        XCTAssertEqual(try history.rows[0].text("by_job"), ids[1])
        XCTAssertEqual(try history.rows[0].text("replaced_by_role"), "muwa_t_carol")
        XCTAssertFalse(try history.rows[1].bool("replaced"))

        // Resolution through the registry: the newest, a fixed version, and no such version.
        let locations = Locations(stateDirectory: state, registry: registry)
        let byName = try await locations.adapter("tiny", field: "adapter", kind: "generate")
        XCTAssertEqual(byName.directory, state + "/adapters/tiny@2")
        let byVersion = try await locations.adapter("tiny@1", field: "adapter", kind: "generate")
        XCTAssertEqual(byVersion.directory, state + "/adapters/tiny@1")
        let registered = try await registry.adapter(named: "tiny", version: 1)
        XCTAssertEqual(registered?.jobID.map(String.init), ids[0])
        let missing = try await registry.adapter(named: "tiny", version: 7)
        XCTAssertNil(missing)

        // if_exists fail, with the registry: refused before training.
        let id = try unwrapped(
            try await carol.execute(
                "SELECT muwa.enqueue('finetune', $1::jsonb) AS id",
                [payload(data, extra: ["if_exists": "fail"]).jsonText]
            ).first?.text("id"))
        let job = try unwrapped(
            try await store.claim(
                queues: ["default"], kinds: ["finetune"], limit: 1, workerID: "w", leaseSeconds: 60
            ).first)
        XCTAssertEqual(String(job.id), id)
        do {
            _ = try await execute(job, state: state, registry: registry)
            XCTFail("expected a refusal")
        } catch let failure as JobFailure {
            XCTAssertFalse(failure.retryable)
            XCTAssertTrue(
                failure.message.contains("already exists (version 2, made by job \(ids[1]))"), failure.message)
        }
    }
}

struct AdapterTestError: Error, CustomStringConvertible {
    let description: String
}

/// XCTUnwrap for values that need `await` (XCTUnwrap's autoclosure cannot await).
func unwrapped<T>(_ value: T?, _ what: String = "a value", file: StaticString = #filePath, line: UInt = #line) throws
    -> T
{
    guard let value else {
        XCTFail("expected \(what), got nil", file: file, line: line)
        throw UnwrapError(description: "missing \(what)")
    }
    return value
}

struct UnwrapError: Error, CustomStringConvertible {
    let description: String
}
