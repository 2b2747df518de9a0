// The job row's checkpoint is not trusted: an evaluate checkpoint whose samples_file lies outside the job's
// work directory — directly, through "..", or through a symlink inside it — is refused without being read,
// and the job starts fresh; one inside is used as before.
import Foundation
import Storage
import XCTest

@testable import Evaluation
@testable import Executors

final class CheckpointConfinementTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "muwa-confine-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch + "/state/jobs/7", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch + "/elsewhere", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    func testOnlySamplesFilesInsideTheWorkDirectoryAreRead() throws {
        let work = scratch + "/state/jobs/7"
        var run = EvaluationRunState(adapter: nil)
        run.samples = [EvalSample(index: 0, id: "a", input: "q", expected: "x", output: "y", score: 1, details: [:])]
        run.settings = ["dataset": "d"]
        let identity: JSONValue = ["task": "squad"]
        let checkpoint = try EvaluateCheckpoint.save([run], identity: identity, directory: work)
        let fresh = [EvaluationRunState(adapter: nil)]
        let loaded = try EvaluateCheckpoint.load(checkpoint, identity: identity, fresh: fresh, allowedDirectory: work)
        XCTAssertEqual(loaded.first?.samples.count, 1, "inside the work directory: used")

        // The same, valid file elsewhere; a ".." path; a symlink in the work directory pointing out; another job's.
        let outside = scratch + "/elsewhere/" + EvaluateCheckpoint.fileName
        try FileManager.default.copyItem(atPath: work + "/" + EvaluateCheckpoint.fileName, toPath: outside)
        try FileManager.default.createSymbolicLink(atPath: work + "/link.json", withDestinationPath: outside)
        try FileManager.default.createDirectory(atPath: scratch + "/state/jobs/8", withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: outside, toPath: scratch + "/state/jobs/8/" + EvaluateCheckpoint.fileName)
        for path in [
            outside, work + "/../../../elsewhere/" + EvaluateCheckpoint.fileName, work + "/link.json",
            scratch + "/state/jobs/8/" + EvaluateCheckpoint.fileName, "/etc/passwd", "/proc/self/environ",
        ] {
            let forged: JSONValue = ["samples_file": .string(path), "done": 1]
            XCTAssertThrowsError(
                try EvaluateCheckpoint.load(forged, identity: identity, fresh: fresh, allowedDirectory: work), path
            ) { error in
                XCTAssertTrue("\(error)".contains("not inside this job's work directory"), "\(error)")
                XCTAssertFalse("\(error)".contains("root:"), "never echoes the file")
            }
        }
        // A work directory reached through a symlinked state directory still holds its own files.
        try FileManager.default.createSymbolicLink(
            atPath: scratch + "/state-link", withDestinationPath: scratch + "/state")
        let viaLink: JSONValue = [
            "samples_file": .string(scratch + "/state-link/jobs/7/" + EvaluateCheckpoint.fileName)
        ]
        XCTAssertNoThrow(
            try EvaluateCheckpoint.load(
                viaLink, identity: identity, fresh: fresh, allowedDirectory: scratch + "/state-link/jobs/7"))
    }

    func testFineTuneCheckpointsThatLeadOutOfTheWorkDirectoryAreIgnored() throws {
        let work = scratch + "/state/jobs/7"
        let checkpoints = TrainingCheckpoints(workDirectory: work)
        try FileManager.default.createDirectory(
            atPath: work + "/checkpoints/step-00000004", withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: work + "/checkpoints/step-00000004/trainer_state.json", contents: Data("{}".utf8))
        try FileManager.default.createDirectory(atPath: scratch + "/elsewhere/step", withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: scratch + "/elsewhere/step/trainer_state.json", contents: Data("{}".utf8))
        try FileManager.default.createSymbolicLink(
            atPath: work + "/checkpoints/step-00000009", withDestinationPath: scratch + "/elsewhere/step")
        XCTAssertEqual(checkpoints.saved().map(\.step), [4], "the symlinked step-00000009 is not a checkpoint")
    }
}
