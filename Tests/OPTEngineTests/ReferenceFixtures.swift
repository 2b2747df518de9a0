// Locates the committed fixtures (Tests/Fixtures) made by tools/fixtures/make_fixtures.py with
// PyTorch + transformers, and decodes their JSON.
import Foundation
@testable import OPTEngine

enum ReferenceFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func model(_ name: String) -> String { root.appendingPathComponent("models/\(name)").path }
    static func expected(_ variant: String, _ file: String) -> String {
        root.appendingPathComponent("expected/\(variant)/\(file)").path
    }

    static func json(_ path: String) throws -> Any {
        guard let data = FileManager.default.contents(atPath: path) else { throw EngineError.missingFile(path: path) }
        return try JSONSerialization.jsonObject(with: data)
    }

    /// Loads a model once per process (tests share them; they are read-only).
    private static var cache: [String: OPTModel] = [:]
    private static let lock = NSLock()
    static func loadModel(_ name: String) throws -> OPTModel {
        lock.lock(); defer { lock.unlock() }
        if let m = cache[name] { return m }
        let m = try OPTModel.load(directory: model(name))
        cache[name] = m
        return m
    }
}
