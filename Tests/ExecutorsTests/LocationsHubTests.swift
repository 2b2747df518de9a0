// Payloads name models and adapters by hub id ("facebook/opt-1.3b", "theSLWayne/Muwa-1.3b"): resolved
// through the local Hugging Face cache (HF_HUB_CACHE here), checked against the roots like any path.
@testable import Executors
import Foundation
import JobQueue
import XCTest

final class LocationsHubTests: XCTestCase {
    func testHubIdsInPayloadsResolveThroughTheCache() async throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-hub-exec-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let commit = String(repeating: "c3", count: 20)
        for (repository, source) in [
            ("tiny-org--opt-tiny", "models/pre-ln-f32"), ("someone--lora-qv", "lora/adapters/pre-ln-qv"),
        ] {
            let folder = cache + "/models--" + repository
            try FileManager.default.createDirectory(atPath: folder + "/refs", withIntermediateDirectories: true)
            try commit.write(toFile: folder + "/refs/main", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: folder + "/snapshots", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(
                atPath: folder + "/snapshots/" + commit, withDestinationPath: fixtures + "/" + source)
        }
        setenv("HF_HUB_CACHE", cache, 1)
        defer { unsetenv("HF_HUB_CACHE") }

        let open = Locations(stateDirectory: nil)
        let model = try open.model("tiny-org/opt-tiny", field: "model", kind: "generate")
        XCTAssertEqual(model.name, "tiny-org/opt-tiny")
        XCTAssertEqual(model.directory, fixtures + "/models/pre-ln-f32")
        let adapter = try await open.adapter("someone/lora-qv", field: "adapter", kind: "generate")
        XCTAssertEqual(adapter.directory, fixtures + "/lora/adapters/pre-ln-qv")

        do {
            _ = try open.model("facebook/opt-1.3b", field: "model", kind: "evaluate")
            XCTFail("an uncached hub id resolved")
        } catch let failure as JobFailure {
            XCTAssertTrue(
                failure.message.hasPrefix(
                    "invalid evaluate payload: model: facebook/opt-1.3b is not in the Hugging Face cache"),
                failure.message)
            XCTAssertTrue(failure.message.contains("huggingface-cli download facebook/opt-1.3b"), failure.message)
        }
        // What a fine-tune writes as the adapter's base_model_name_or_path: the hub id, however it was named.
        XCTAssertEqual(PortableModelName.of(model), "tiny-org/opt-tiny")
        let bySnapshotPath = try open.model(
            cache + "/models--tiny-org--opt-tiny/snapshots/" + commit, field: "model", kind: "finetune")
        XCTAssertEqual(
            PortableModelName.of(
                ModelLocation(
                    name: cache + "/models--tiny-org--opt-tiny/snapshots/" + commit,
                    directory: cache + "/models--tiny-org--opt-tiny/snapshots/" + commit)),
            "tiny-org/opt-tiny")
        XCTAssertEqual(bySnapshotPath.directory, fixtures + "/models/pre-ln-f32")
        let plain = try open.model(fixtures + "/models/pre-ln-f32", field: "model", kind: "finetune")
        XCTAssertEqual(PortableModelName.of(plain), fixtures + "/models/pre-ln-f32")

        // The snapshot is checked against the roots like any path.
        let confined = Locations(stateDirectory: nil, roots: AccessRoots(models: ["/srv/muwa"], data: nil))
        XCTAssertThrowsError(try confined.model("tiny-org/opt-tiny", field: "model", kind: "generate")) { error in
            XCTAssertTrue(
                "\(error)".contains("is outside the directories this daemon may read model files from"), "\(error)")
        }
    }
}
