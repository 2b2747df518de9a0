// Hub ids through a Hugging Face cache laid out like huggingface_hub's (refs/, snapshots/<commit>/ with
// symlinks into blobs/), built here from a committed fixture checkpoint.
import Foundation
import XCTest

@testable import OPTEngine

final class HubCacheTests: XCTestCase {
    var cache = ""
    let mainCommit = String(repeating: "a1", count: 20)
    let oldCommit = String(repeating: "0b", count: 20)

    /// models--tiny-org--opt-tiny with "main" → mainCommit and tag "v1" → oldCommit, every file a symlink
    /// into blobs/ as huggingface_hub writes them.
    override func setUpWithError() throws {
        cache = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-hub-\(UUID().uuidString)").path
        let repo = cache + "/models--tiny-org--opt-tiny"
        let fm = FileManager.default
        try fm.createDirectory(atPath: repo + "/blobs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: repo + "/refs/tags", withIntermediateDirectories: true)
        try (mainCommit + "\n").write(toFile: repo + "/refs/main", atomically: true, encoding: .utf8)
        try oldCommit.write(toFile: repo + "/refs/tags/v1", atomically: true, encoding: .utf8)
        let source = ReferenceFixtures.model("pre-ln-f32")
        for commit in [mainCommit, oldCommit] {
            let snapshot = repo + "/snapshots/" + commit
            try fm.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: source) {
                let blob = "blob-\(commit.prefix(4))-\(name)"
                try fm.copyItem(
                    atPath: URL(fileURLWithPath: source + "/" + name).resolvingSymlinksInPath().path,
                    toPath: repo + "/blobs/" + blob)
                try fm.createSymbolicLink(atPath: snapshot + "/" + name, withDestinationPath: "../../blobs/" + blob)
            }
        }
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: cache)
    }

    func testHubIdsResolveToSnapshotsAndLoad() throws {
        let environment = ["HF_HUB_CACHE": cache]
        let repo = cache + "/models--tiny-org--opt-tiny/snapshots/"
        XCTAssertEqual(try HubCache.resolveDirectory("tiny-org/opt-tiny", environment: environment), repo + mainCommit)
        XCTAssertEqual(
            try HubCache.resolveDirectory("tiny-org/opt-tiny@main", environment: environment), repo + mainCommit)
        XCTAssertEqual(
            try HubCache.resolveDirectory("tiny-org/opt-tiny@tags/v1", environment: environment), repo + oldCommit)
        XCTAssertEqual(
            try HubCache.resolveDirectory("tiny-org/opt-tiny@\(oldCommit)", environment: environment), repo + oldCommit)

        let snapshot = try HubCache.resolveDirectory("tiny-org/opt-tiny", environment: environment)
        let cached = try OPTModel.load(directory: snapshot)
        let direct = try OPTModel.load(directory: ReferenceFixtures.model("pre-ln-f32"))
        XCTAssertEqual(cached.config, direct.config)
        let tokenizer = try BPETokenizer.load(directory: snapshot)
        XCTAssertEqual(
            tokenizer.encode("Hello, hub"),
            try BPETokenizer.load(directory: ReferenceFixtures.model("pre-ln-f32")).encode("Hello, hub"))
    }

    func testTheCacheDirectoryFollowsHuggingfaceHubsOrder() {
        XCTAssertEqual(HubCache.directory(environment: ["HF_HUB_CACHE": "/a", "HF_HOME": "/b", "HOME": "/h"]), "/a")
        XCTAssertEqual(
            HubCache.directory(environment: ["HF_HOME": "/b", "XDG_CACHE_HOME": "/x", "HOME": "/h"]), "/b/hub")
        XCTAssertEqual(HubCache.directory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]), "/x/huggingface/hub")
        XCTAssertEqual(HubCache.directory(environment: ["HOME": "/h"]), "/h/.cache/huggingface/hub")
    }

    func testWhatIsNotAHubIdOrNotCachedSaysSo() throws {
        XCTAssertNil(HubReference("opt-125m"))
        XCTAssertNil(HubReference("/srv/models/opt"))
        XCTAssertNil(HubReference("a/b/c"))
        XCTAssertNil(HubReference("../etc"))
        XCTAssertNil(HubReference("org/na..me"))
        XCTAssertNil(HubReference("org/name@../../etc"))
        XCTAssertEqual(HubReference("theSLWayne/Muwa-1.3b")?.repository, "theSLWayne/Muwa-1.3b")
        XCTAssertEqual(HubReference("facebook/opt-125m@refs/pr/1")?.revision, "refs/pr/1")

        // Not a hub id: unchanged, for the caller's own message.
        XCTAssertEqual(
            try HubCache.resolveDirectory("no-such-dir", environment: ["HF_HUB_CACHE": cache]), "no-such-dir")

        let environment = ["HF_HUB_CACHE": cache]
        XCTAssertThrowsError(try HubCache.resolveDirectory("facebook/opt-125m", environment: environment)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("facebook/opt-125m is not in the Hugging Face cache"), text)
            XCTAssertTrue(text.contains(cache + "/models--facebook--opt-125m"), text)
            XCTAssertTrue(text.contains("huggingface-cli download facebook/opt-125m"), text)
        }
        XCTAssertThrowsError(try HubCache.resolveDirectory("tiny-org/opt-tiny@dev", environment: environment)) {
            error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("revision \"dev\" is not in the cache (cached: main, tags/v1)"), text)
            XCTAssertTrue(text.contains("--revision dev"), text)
        }
    }
}
