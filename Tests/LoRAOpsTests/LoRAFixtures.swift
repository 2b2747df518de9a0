// Locates the committed LoRA fixtures (Tests/Fixtures/lora, made by tools/fixtures/make_lora_fixtures.py
// with peft + PyTorch) and the tiny base checkpoints, and runs a batch through the engine for logits.
import Foundation
import XCTest
@testable import LoRAOps
import OPTEngine

enum LoRAFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func model(_ name: String) -> String { root.appendingPathComponent("models/\(name)").path }
    static func lora(_ path: String) -> String { root.appendingPathComponent("lora/\(path)").path }

    static func json(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoRAError.missingFile(path: path) }
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LoRAError.invalidConfig(path: path, reason: "not an object")
        }
        return obj
    }

    private static var cache: [String: OPTModel] = [:]
    private static let lock = NSLock()
    /// Loads a base model once per process (shared, read-only).
    static func loadModel(_ name: String) throws -> OPTModel {
        lock.lock(); defer { lock.unlock() }
        if let m = cache[name] { return m }
        let m = try OPTModel.load(directory: model(name))
        cache[name] = m
        return m
    }

    /// Logits (B, T, V/step) of a padded batch, columns 0, step, 2·step, … as the fixtures store them.
    static func logits(_ model: OPTModel, ids: [[Int]], mask: [[Int]], delta: ProjectionDelta?, step: Int = 8) throws
        -> [Float]
    {
        let B = ids.count, T = ids[0].count, V = model.config.vocabSize, Vs = (V + step - 1) / step
        var out = [Float](repeating: .nan, count: B * T * Vs)
        let session = BatchSession(model: model, batch: B, capacity: T)
        try session.append(
            tokens: ids, mask: mask, delta: delta,
            logits: .all({ b, t, row in
                for j in 0..<Vs { out[(b * T + t) * Vs + j] = row[j * step] }
            }))
        return out
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
        var m: Float = 0
        for (x, y) in zip(a, b) { m = max(m, abs(x - y)) }
        return m
    }

    static func tensorFloats(_ path: String, _ name: String) throws -> [Float] {
        let file = try SafetensorsFile(path: path)
        guard let t = file.tensors[name] else { throw LoRAError.missingFile(path: path + "#" + name) }
        return t.toFloatArray()
    }
}
