// AccessRoots: payload paths are resolved (symlinks followed) and must lie under a root, component-wise.
import Executors
import Foundation
import JobQueue
import XCTest

final class AccessRootsTests: XCTestCase {
    var base: String = ""

    override func setUpWithError() throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-roots-\(UUID().uuidString)").path
        for directory in ["allowed/data", "allowed-other", "elsewhere"] {
            try FileManager.default.createDirectory(atPath: base + "/" + directory, withIntermediateDirectories: true)
        }
        try "x".write(toFile: base + "/allowed/data/train.jsonl", atomically: true, encoding: .utf8)
        try "x".write(toFile: base + "/allowed-other/train.jsonl", atomically: true, encoding: .utf8)
        try "x".write(toFile: base + "/elsewhere/secret.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(
            atPath: base + "/allowed/data/link.txt", withDestinationPath: base + "/elsewhere/secret.txt")
        try FileManager.default.createSymbolicLink(
            atPath: base + "/allowed/inside-link", withDestinationPath: base + "/allowed/data")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: base)
    }

    func message(_ body: () throws -> String) -> String {
        do {
            return "resolved: " + (try body())
        } catch let failure as JobFailure {
            return failure.message
        } catch {
            return "\(error)"
        }
    }

    func testPathsUnderARootResolveAndOthersAreRefused() {
        let roots = AccessRoots(models: nil, data: [base + "/allowed"])
        let resolve = { (path: String) in
            self.message { try roots.resolve(path, use: .data, field: "dataset.path", kind: "finetune") }
        }

        XCTAssertEqual(resolve(base + "/allowed/data/train.jsonl"), "resolved: " + base + "/allowed/data/train.jsonl")
        XCTAssertEqual(
            resolve(base + "/allowed/data/../data/train.jsonl"), "resolved: " + base + "/allowed/data/train.jsonl")
        // A symlink that stays inside the root is fine, and the real path is what gets read.
        XCTAssertEqual(
            resolve(base + "/allowed/inside-link/train.jsonl"), "resolved: " + base + "/allowed/data/train.jsonl")
        // A sibling whose name starts with the root's is not under it.
        XCTAssertTrue(
            resolve(base + "/allowed-other/train.jsonl").contains(
                "is outside the directories this daemon may read data files from"))
        // A symlink out of the root is refused, naming where it leads.
        let escaped = resolve(base + "/allowed/data/link.txt")
        XCTAssertTrue(escaped.contains("(which is \(base)/elsewhere/secret.txt) is outside"), escaped)
        XCTAssertTrue(escaped.contains("MUWA_DATA_ROOTS: \(base)/allowed"), escaped)
        XCTAssertTrue(resolve(base + "/allowed/../elsewhere/secret.txt").contains("is outside"))
        XCTAssertEqual(
            resolve(base + "/allowed/none.jsonl"),
            "invalid finetune payload: dataset.path: \(base)/allowed/none.jsonl does not exist")
        // Models are unrestricted here (nil).
        XCTAssertEqual(
            message { try roots.resolve(base + "/elsewhere", use: .model, field: "model", kind: "generate") },
            "resolved: " + base + "/elsewhere")
    }

    func testSettingsParseAndTheStateDirectoryAlwaysHoldsModels() {
        XCTAssertNil(AccessRoots.parse("*"))
        XCTAssertEqual(AccessRoots.parse("/a:/b, /c,,"), ["/a", "/b", "/c"])
        XCTAssertEqual(AccessRoots.parse(""), [])
        XCTAssertEqual(AccessRoots.defaultRoots(stateDirectory: "/var/lib/muwad"), ["/var/lib/muwad", "/srv/muwa"])

        let state = base + "/allowed"
        let locations = Locations(stateDirectory: state, roots: AccessRoots(models: [], data: []))
        XCTAssertEqual(locations.roots.models, [state])
        XCTAssertEqual(locations.roots.data, [])
        XCTAssertTrue(
            message { try locations.dataPath(state + "/data/train.jsonl", field: "dataset.path", kind: "evaluate") }
                .contains("(MUWA_DATA_ROOTS: )"))
    }

    func testParquetFilesAreRefusedWithTheConversionCommand() throws {
        let parquet = base + "/allowed/data/train-00000-of-00001.parquet"
        try Data("PAR1".utf8 + [0, 0, 0, 0] + "PAR1".utf8).write(to: URL(fileURLWithPath: parquet))
        let locations = Locations(stateDirectory: nil)
        let text = message { try locations.dataPath(parquet, field: "dataset.path", kind: "finetune") }
        XCTAssertTrue(text.contains("is a Parquet file"), text)
        XCTAssertTrue(text.contains("pd.read_parquet('\(parquet)').to_json('\(parquet).jsonl'"), text)
        XCTAssertEqual(
            message {
                try locations.dataPath(base + "/allowed/data/train.jsonl", field: "dataset.path", kind: "finetune")
            },
            "resolved: " + base + "/allowed/data/train.jsonl")
    }
}
