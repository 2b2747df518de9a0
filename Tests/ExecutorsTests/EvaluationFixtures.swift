// Locates the evaluation fixtures (Tests/Fixtures/eval, made by tools/fixtures/make_eval_fixtures.py with
// transformers + peft), decodes their JSON, loads the tiny checkpoints once per process, and provides the
// fixture's LoRA as a ProjectionDelta (a plain y += scale · B(A x) on q_proj/v_proj, as peft computes it).
import Foundation
import OPTEngine
import XCTest

@testable import Evaluation
@testable import Executors

enum EvalFixtures {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let root = fixtures.appendingPathComponent("eval")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    static func dataset(_ relative: String) -> String { path("datasets/\(relative)") }
    static func model(_ name: String) -> String { fixtures.appendingPathComponent("models/\(name)").path }

    static func json(_ relative: String) throws -> Any {
        let file = path(relative)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw EvaluationError.missingFile(path: file)
        }
        return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    }

    static func object(_ relative: String) throws -> [String: Any] {
        try XCTUnwrap(try json(relative) as? [String: Any], relative)
    }

    static func list(_ relative: String) throws -> [[String: Any]] {
        try XCTUnwrap(try json(relative) as? [[String: Any]], relative)
    }

    /// The runs of expected/: (run name, model directory, adapter?).
    static let runs: [(name: String, model: String, lora: Bool)] = [
        ("pre-ln-eval-f32", "pre-ln-eval-f32", false), ("pre-ln-eval-f32+lora", "pre-ln-eval-f32", true),
        ("pre-ln-f32", "pre-ln-f32", false), ("post-ln-f32", "post-ln-f32", false),
    ]

    private static var evaluators: [String: Evaluator] = [:]
    private static let lock = NSLock()

    static func evaluator(_ modelName: String) throws -> Evaluator {
        lock.lock()
        defer { lock.unlock() }
        if let e = evaluators[modelName] { return e }
        let dir = model(modelName)
        let e = Evaluator(model: try OPTModel.load(directory: dir), tokenizer: try BPETokenizer.load(directory: dir))
        evaluators[modelName] = e
        return e
    }

    static func lora() throws -> FixtureLoRA { try FixtureLoRA(try object("lora/pre-ln-eval-f32-lora.json")) }

    static func delta(lora: Bool) throws -> ProjectionDelta? { lora ? try self.lora() : nil }

    /// A temporary directory for files the error tests write; removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The fixture's LoRA: A (r, in), B (out, r) per (layer, module), delta = scale · B(A x).
final class FixtureLoRA: ProjectionDelta {
    struct Pair {
        var a: [Float]  // (r, in)
        var b: [Float]  // (out, r)
    }

    let r: Int
    let scale: Float
    private var pairs: [String: Pair] = [:]

    init(_ doc: [String: Any]) throws {
        r = try XCTUnwrap(doc["r"] as? Int)
        scale = Float(try XCTUnwrap(doc["scale"] as? Double))
        for tensor in try XCTUnwrap(doc["tensors"] as? [[String: Any]]) {
            let layer = try XCTUnwrap(tensor["layer"] as? Int), module = try XCTUnwrap(tensor["module"] as? String)
            let a = try XCTUnwrap(tensor["A"] as? [[Double]]).flatMap { $0.map(Float.init) }
            let b = try XCTUnwrap(tensor["B"] as? [[Double]]).flatMap { $0.map(Float.init) }
            pairs["\(layer).\(module)"] = Pair(a: a, b: b)
        }
    }

    func addDelta(
        layer: Int, module: ProjectionModule, inp: UnsafePointer<Float>, inDim: Int,
        out: UnsafeMutablePointer<Float>, outDim: Int, batch: Int, rowsPerSequence: Int
    ) {
        guard let p = pairs["\(layer).\(module.rawValue)"] else { return }
        var t = [Float](repeating: 0, count: r)
        for row in 0..<(batch * rowsPerSequence) {
            let x = inp + row * inDim, y = out + row * outDim
            for k in 0..<r {
                var s: Float = 0
                for i in 0..<inDim { s += p.a[k * inDim + i] * x[i] }
                t[k] = s
            }
            for o in 0..<outDim {
                var s: Float = 0
                for k in 0..<r { s += p.b[o * r + k] * t[k] }
                y[o] += s * scale
            }
        }
    }
}

/// |a - b| ≤ tolerance · |b| (relative), for perplexities and log-likelihoods.
func XCTAssertRelativelyClose(
    _ a: Double, _ b: Double, _ tolerance: Double, _ message: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertLessThanOrEqual(abs(a - b), tolerance * abs(b), "\(a) vs \(b) \(message())", file: file, line: line)
}
