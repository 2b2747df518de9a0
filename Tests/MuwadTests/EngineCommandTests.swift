// The engine subcommands as a user runs them: the built `muwad` binary, its JSON output compared with
// the transformers fixtures, and clean failures (message, exit status 1) on bad input.
import Foundation
import XCTest
import TestSupport

final class EngineCommandTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    private static var model: String { fixtures.appendingPathComponent("models/pre-ln-f32").path }

    private func muwad(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let dir = (Bundle.main.executableURL ?? Bundle.main.bundleURL).deletingLastPathComponent()
        let binary = dir.appendingPathComponent("muwad")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            struct NotBuilt: Error, CustomStringConvertible { let description: String }
            throw NotBuilt(description: "muwad binary not built next to the tests (\(binary.path))")
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    private func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testGenerateJSONMatchesTransformersGreedy() throws {
        let expected = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(
                    contentsOf:
                        Self.fixtures.appendingPathComponent("expected/pre-ln-f32/greedy.json"))) as? [String: Any])
        let prompts = try XCTUnwrap(expected["prompts"] as? [[String: Any]])
        let first = try XCTUnwrap(prompts.first)
        let greedy = try XCTUnwrap((first["cases"] as? [String: [String: Any]])?["greedy"])
        let r = try muwad([
            "generate", "--model", Self.model, "--prompt", try XCTUnwrap(first["prompt"] as? String),
            "--max-new-tokens", "12", "--json",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let line = try XCTUnwrap(try jsonLines(r.out).first)
        XCTAssertEqual(line["token_ids"] as? [Int], greedy["generated_ids"] as? [Int])
        XCTAssertEqual(line["text"] as? String, greedy["text"] as? String)
        XCTAssertEqual(line["finish_reason"] as? String, "length")
    }

    func testHubIdsResolveThroughTheLocalCache() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-hub-cli-\(getpid())").path
        let commit = String(repeating: "e5", count: 20), folder = cache + "/models--tiny-org--opt-tiny"
        try? FileManager.default.removeItem(atPath: cache)
        defer { try? FileManager.default.removeItem(atPath: cache) }
        try FileManager.default.createDirectory(atPath: folder + "/refs", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/snapshots", withIntermediateDirectories: true)
        try commit.write(toFile: folder + "/refs/main", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(
            atPath: folder + "/snapshots/" + commit, withDestinationPath: Self.model)
        setenv("HF_HUB_CACHE", cache, 1)
        defer { unsetenv("HF_HUB_CACHE") }

        let args = ["--prompt", "Hello world", "--max-new-tokens", "6", "--json"]
        let byPath = try muwad(["generate", "--model", Self.model] + args)
        let byID = try muwad(["generate", "--model", "tiny-org/opt-tiny"] + args)
        XCTAssertEqual(byID.status, 0, byID.err)
        XCTAssertEqual(byID.out, byPath.out)
        let missing = try muwad(["generate", "--model", "facebook/opt-125m"] + args)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(
            missing.err.contains(
                "facebook/opt-125m is not in the Hugging Face cache (looked for \(cache)/models--facebook--opt-125m)"),
            missing.err)
        XCTAssertTrue(missing.err.contains("huggingface-cli download facebook/opt-125m"), missing.err)
    }

    /// --memory-limit (issue 9): a model over the limit is a clean failure naming the estimate and the
    /// limit; a value that is not a size is refused by name; a roomy limit runs.
    func testMemoryLimitIsEnforced() throws {
        let tight = try muwad([
            "generate", "--model", Self.model, "--prompt", "Hi", "--max-new-tokens", "2",
            "--memory-limit", "64KiB",
        ])
        XCTAssertEqual(tight.status, 1, tight.err)
        XCTAssertTrue(tight.err.contains("more than the memory limit of 64 KiB"), tight.err)
        let bad = try muwad(["score", "--model", Self.model, "--text", "Hi", "--memory-limit", "lots"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--memory-limit 'lots' is not a size"), bad.err)
        let roomy = try muwad([
            "generate", "--model", Self.model, "--prompt", "Hi", "--max-new-tokens", "2",
            "--memory-limit", "1GiB", "--json",
        ])
        XCTAssertEqual(roomy.status, 0, roomy.err)
    }

    func testSampledGenerationRepeatsWithTheSameSeed() throws {
        let args = [
            "generate", "--model", Self.model, "--prompt", "Hello world", "--prompt", "Hi", "--max-new-tokens", "10",
            "--do-sample", "--temperature", "0.9", "--top-k", "50", "--top-p", "0.95", "--json",
        ]
        let a = try muwad(args + ["--seed", "5"]), b = try muwad(args + ["--seed", "5"]),
            c = try muwad(args + ["--seed", "6"])
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertEqual(a.out, b.out)
        XCTAssertNotEqual(a.out, c.out)
        // alone or batched: the same seed gives the same text
        let alone = try muwad([
            "generate", "--model", Self.model, "--prompt", "Hi", "--max-new-tokens", "10", "--do-sample",
            "--temperature", "0.9", "--top-k", "50", "--top-p", "0.95", "--json", "--seed", "5",
        ])
        XCTAssertEqual(
            try jsonLines(alone.out)[0]["token_ids"] as? [Int], try jsonLines(a.out)[1]["token_ids"] as? [Int])
    }

    func testSamplingDefaultsDoNotSurprise() throws {
        let base = ["generate", "--model", Self.model, "--prompt", "Hello world", "--max-new-tokens", "10"]
        // Sampling settings without --do-sample are refused, not silently ignored.
        for flag in [["--temperature", "0.5"], ["--top-k", "5"], ["--top-p", "0.9"], ["--seed", "3"]] {
            let r = try muwad(base + flag)
            XCTAssertNotEqual(r.status, 0, "\(flag) was accepted without --do-sample")
            XCTAssertTrue(r.err.contains("\(flag[0]) applies only to sampling: add --do-sample"), r.err)
        }
        // --do-sample without --seed: a fresh seed each run, reported, and repeatable with --seed.
        let a = try muwad(base + ["--do-sample", "--json"]), b = try muwad(base + ["--do-sample", "--json"])
        XCTAssertEqual(a.status, 0, a.err)
        let seedA = try XCTUnwrap(try jsonLines(a.out)[0]["seed"] as? Int)
        let seedB = try XCTUnwrap(try jsonLines(b.out)[0]["seed"] as? Int)
        XCTAssertNotEqual(seedA, seedB)
        let again = try muwad(base + ["--do-sample", "--json", "--seed", String(seedA)])
        XCTAssertEqual(again.out, a.out)
        // More new tokens than the model has positions: said, not silently cut.
        let long = try muwad([
            "generate", "--model", Self.model, "--prompt", "Hello world", "--max-new-tokens", "100", "--json",
        ])
        XCTAssertEqual(long.status, 0, long.err)
        XCTAssertTrue(
            long.err.contains("warning: a prompt of 3 tokens leaves room for 61 new tokens, not 100"), long.err)
    }

    func testStopStringEndsGeneration() throws {
        // the greedy continuation of "Hello world" is " dissatisfiedstuff pet pet …"
        let r = try muwad([
            "generate", "--model", Self.model, "--prompt", "Hello world", "--max-new-tokens", "12",
            "--stop", " pet", "--json",
        ])
        let line = try XCTUnwrap(try jsonLines(r.out).first)
        XCTAssertEqual(line["text"] as? String, " dissatisfiedstuff")
        XCTAssertEqual(line["finish_reason"] as? String, "stop")
    }

    func testScoreAndTokenizeJSON() throws {
        let expected = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(
                    contentsOf:
                        Self.fixtures.appendingPathComponent("expected/pre-ln-f32/score.json"))) as? [String: Any])
        let text = try XCTUnwrap((expected["texts"] as? [[String: Any]])?.last)
        // the exact path (the CLI's default, compute auto, is bf16 on CPUs with avx512_bf16; BF16ParityTests hold that)
        let r = try muwad([
            "score", "--model", Self.model, "--compute", "f32", "--text", try XCTUnwrap(text["text"] as? String),
            "--json",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let line = try XCTUnwrap(try jsonLines(r.out).first)
        XCTAssertEqual(line["tokens"] as? [Int], text["ids"] as? [Int])
        let sum = try XCTUnwrap(line["sum_logprob"] as? Double), want = try XCTUnwrap(text["sum_logprob"] as? Double)
        XCTAssertEqual(sum, want, accuracy: 1e-4 * abs(want))
        XCTAssertEqual((line["logprobs"] as? [Double])?.count, (text["ids"] as? [Int]).map { $0.count - 1 })

        let t = try muwad(["tokenize", "--model", Self.model, "--text", "Hello world", "--json"])
        XCTAssertEqual(try jsonLines(t.out).first?["ids"] as? [Int], [2, 15500, 999])
    }

    func testBadInputFailsCleanly() throws {
        let missing = try muwad(["generate", "--model", "/nonexistent/opt", "--prompt", "x"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("/nonexistent/opt"), missing.err)
        let badTemp = try muwad([
            "generate", "--model", Self.model, "--prompt", "x", "--do-sample", "--temperature", "0",
        ])
        XCTAssertNotEqual(badTemp.status, 0)
        XCTAssertTrue(badTemp.err.contains("temperature"), badTemp.err)
        // a bad peer setting fails before the benchmark runs (nothing on stdout)
        let badPeer = try muwad(["bench", "--model", Self.model, "--pytorch", "--pytorch-compute", "f32,f64"])
        XCTAssertNotEqual(badPeer.status, 0)
        XCTAssertTrue(badPeer.err.contains("--pytorch-compute") && badPeer.err.contains("f64"), badPeer.err)
        XCTAssertEqual(badPeer.out, "")
    }
}
