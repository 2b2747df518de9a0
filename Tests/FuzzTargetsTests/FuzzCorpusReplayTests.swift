// Replays every committed fuzz input — the seed corpora (fuzz/corpus/TARGET) and the inputs that once
// crashed a parser (fuzz/regressions/TARGET) — through its target, without a fuzzer. A parser that
// traps on one of them takes this test process down, so a crash once found stays fixed.
import FuzzTargets
import Foundation
import XCTest

final class FuzzCorpusReplayTests: XCTestCase {
    /// The repository's fuzz/ directory (this file is Tests/FuzzTargetsTests/…).
    static let fuzzRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fuzz")

    static func inputs(_ kind: String, _ target: FuzzTarget) -> [URL] {
        let dir = fuzzRoot.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        guard let enumerator = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey])
        else { return [] }
        return enumerator.compactMap { $0 as? URL }
            .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            .filter { !$0.lastPathComponent.hasPrefix(".") && $0.lastPathComponent != "README.md" }
            .sorted { $0.path < $1.path }
    }

    func replay(_ target: FuzzTarget) throws {
        let seeds = Self.inputs("corpus", target)
        XCTAssertFalse(seeds.isEmpty, "fuzz/corpus/\(target.rawValue) has no seed inputs")
        for file in seeds + Self.inputs("regressions", target) {
            FuzzTarget.run(target, data: [UInt8](try Data(contentsOf: file)))
        }
    }

    func testSafetensorsInputs() throws { try replay(.safetensors) }
    func testTorchInputs() throws { try replay(.torch) }
    func testConfigInputs() throws { try replay(.config) }
    func testTokenizerInputs() throws { try replay(.tokenizer) }
    func testAdapterInputs() throws { try replay(.adapter) }
    func testPayloadInputs() throws { try replay(.payload) }
    func testDatasetInputs() throws { try replay(.dataset) }

    func testEveryTargetHasACorpusDirectory() {
        for target in FuzzTarget.allCases {
            var isDirectory: ObjCBool = false
            let path = Self.fuzzRoot.appendingPathComponent("corpus").appendingPathComponent(target.rawValue).path
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue,
                "missing \(path)")
        }
    }
}
