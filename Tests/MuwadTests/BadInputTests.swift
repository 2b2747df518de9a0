// Bad input: malformed payloads (wrong types, missing keys, negative or absurd numbers, unknown model
// paths, oversized prompts, non-UTF-8 text) each fail at once (no retries) with a message that says what
// was wrong, while the same daemon keeps serving good jobs, a real generate job included.
import Foundation
import Storage
import XCTest
import TestSupport

final class BadInputTests: XCTestCase {
    static let name = "muwa_t_bad_input"

    private var model: String {
        Harness.repositoryRoot.appendingPathComponent("Tests/Fixtures/models/pre-ln-f32").path
    }

    func testMalformedPayloadsFailClearlyWhileGoodJobsSucceed() async throws {
        let (settings, database) = try Harness.migratedDatabase(Self.name)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: model + "/config.json"), "fixture model missing at \(model)")
        let m = model
        let longPrompt = String(repeating: "the quick brown fox jumps over the lazy dog ", count: 20)
        let hugePrompt = String(repeating: "a", count: 300 << 10)
        let cases: [(kind: String, payload: JSONValue, expected: String)] = [
            (
                "ping", ["sleep_ms": "100"],
                "invalid ping payload: sleep_ms must be a whole number from 0 to 86400000, got string"
            ),
            ("ping", ["sleep_ms": -5], "sleep_ms must be a whole number from 0 to 86400000, got -5"),
            ("ping", ["sleep_ms": 1e12], "sleep_ms must be a whole number from 0 to 86400000, got 1000000000000"),
            ("ping", ["sleep_ms": 2.5], "got 2.5"),
            ("ping", ["fail": 42], "fail must be a non-empty string (the error message) or a boolean, got number"),
            ("ping", ["fail": "x", "fail_attempts": 0], "fail_attempts must be a whole number from 1 to 1000, got 0"),
            ("ping", ["retryable": "no"], "retryable must be true or false, got string"),
            ("generate", [:], "invalid generate payload: model is required"),
            ("generate", ["model": 5, "prompt": "hi"], "model must be a string, got number"),
            (
                "generate", ["model": "/nonexistent/opt-125m", "prompt": "hi"],
                "model directory /nonexistent/opt-125m does not exist"
            ),
            ("generate", ["model": .string(m + "/config.json"), "prompt": "hi"], "is not a directory"),
            (
                "generate", ["model": "/etc", "prompt": "hi"],
                "/etc is outside the directories this daemon may read model files from"
            ),
            ("generate", ["model": .string(m)], "prompt (a string) or prompts (a list of strings) is required"),
            ("generate", ["model": .string(m), "prompt": "a", "prompts": ["b"]], "not both"),
            ("generate", ["model": .string(m), "prompts": ["a", 3]], "prompts[1] must be a string, got number"),
            ("generate", ["model": .string(m), "prompts": []], "prompts must hold at least one prompt"),
            (
                "generate", ["model": .string(m), "prompt": "hi", "max_new_tokens": -3],
                "max_new_tokens must be a whole number from 0 to 8192, got -3"
            ),
            ("generate", ["model": .string(m), "prompt": "hi", "max_new_tokens": 1e9], "got 1000000000"),
            (
                "generate", ["model": .string(m), "prompt": "hi", "temperature": "hot"],
                "temperature must be a number from 0.001 to 100, got string"
            ),
            ("generate", ["model": .string(m), "prompt": "hi", "top_p": 2], "top_p must be a number"),
            ("generate", ["model": .string(m), "prompt": "hi", "max_tokens": 5], "unknown field \"max_tokens\""),
            (
                "generate", ["model": .string(m), "prompt": "hi", "stop": "x"],
                "stop must be a list of strings, got string"
            ),
            (
                "generate", ["model": .string(m), "prompt": .string(longPrompt)],
                "has 64 positions, so nothing could be generated"
            ),
            (
                "generate", ["model": .string(m), "prompt": .string(hugePrompt)],
                "prompt is 307200 bytes long; the limit is 262144"
            ),
        ]
        var ids: [String] = []
        for (kind, payload, _) in cases {
            ids.append(
                try await database.scalar("SELECT muwa.enqueue($1, $2::jsonb)", [kind, payload.jsonText]) ?? "?")
        }
        let good = try await database.column(
            "SELECT muwa.enqueue('ping', jsonb_build_object('good', i)) FROM generate_series(1, 5) AS i")
        let generateID = try await database.scalar(
            "SELECT muwa.enqueue('generate', $1::jsonb)",
            [
                JSONValue.object([
                    "model": .string(m), "prompts": ["Hello", "The capital of France is"], "max_new_tokens": 5,
                ]).jsonText
            ])

        let daemon = try DaemonProcess(settings, name: "bad-input", arguments: ["--concurrency", "2"])
        try await eventually(60, daemon.log) {
            try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status IN ('queued', 'running')") == "0"
        }
        for (index, id) in ids.enumerated() {
            let row = try await database.firstRow(
                "SELECT status, attempt, errors->0->>'message' AS message FROM muwa.jobs WHERE id = $1", [id])
            let message = try row.text("message") ?? "(none)"
            XCTAssertEqual(
                try row.string("status"), "failed", "case \(index): \(cases[index].payload.jsonText.prefix(120))")
            XCTAssertEqual(try row.int("attempt"), 1, "case \(index) was retried: \(message)")
            XCTAssertTrue(
                message.contains(cases[index].expected),
                "case \(index): \"\(message)\" lacks \"\(cases[index].expected)\"")
        }
        for id in good {
            let status = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [id])
            XCTAssertEqual(status, "succeeded")
        }
        let generated = try await database.firstRow(
            "SELECT status, result, (SELECT count(*) FROM muwa.job_outputs WHERE job_id = $1) AS outputs FROM muwa.jobs WHERE id = $1",
            [generateID])
        XCTAssertEqual(try generated.string("status"), "succeeded", daemon.log)
        XCTAssertEqual(try generated.int("outputs"), 2)
        XCTAssertEqual(try generated.json("result")?["outputs"], 2)
        let firstOutput = try await database.firstRow(
            "SELECT output FROM muwa.job_outputs WHERE job_id = $1 AND idx = 0", [generateID])
        let tokens = try firstOutput.json("output")?["token_ids"]?.arrayValue ?? []
        XCTAssertGreaterThan(tokens.count, 0)
        XCTAssertLessThanOrEqual(tokens.count, 5)
        XCTAssertTrue(daemon.isRunning)
        await daemon.stop()
    }

    func testNonUTF8PayloadFailsWithTheOffendingByte() async throws {
        // Only a SQL_ASCII database can hold non-UTF-8 text; muwad reads the raw bytes and says where.
        let (settings, database) = try Harness.migratedDatabase(Self.name + "_ascii", encoding: "SQL_ASCII")
        let bad = try await database.scalar(#"SELECT muwa.enqueue('ping', E'{"text": "caf\xe9"}'::jsonb)"#)
        let fine = try await database.scalar(#"SELECT muwa.enqueue('ping', '{"text": "plain"}')"#)
        let daemon = try DaemonProcess(settings, name: "bad-utf8")
        try await eventually(15, daemon.log) {
            try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE status IN ('queued', 'running')") == "0"
        }
        let row = try await database.firstRow(
            "SELECT status, attempt, errors->0->>'message' AS message FROM muwa.jobs WHERE id = $1", [bad])
        XCTAssertEqual(try row.string("status"), "failed")
        XCTAssertEqual(try row.int("attempt"), 1)
        XCTAssertEqual(
            try row.string("message"),
            "the payload cannot be read: column \"payload\" is not valid UTF-8 (byte 0xE9 at offset 13)")
        let other = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [fine])
        XCTAssertEqual(other, "succeeded")
        await daemon.stop()
    }
}
