// `generate` payloads: the templates render exactly as documented (Alpaca word for word, its input form,
// custom templates, placeholders filled once), and every mistake — an unknown template, a custom template
// without {instruction}, an unknown adapter, an adapter for another model, a prompt longer than the model's
// positions, wrong types, unknown fields — fails the job permanently with a message naming the field.
import Foundation
import Logging
import OPTEngine
import Storage
import XCTest

@testable import Executors
@testable import JobQueue

final class GeneratePayloadTests: XCTestCase {
    let model = GenerateFixtures.model("pre-ln-f32")
    var state = URL(fileURLWithPath: "/nonexistent")

    override func setUpWithError() throws {
        state = try GenerateFixtures.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: state)
    }

    // MARK: - Templates

    static let alpacaNoInput =
        "Below is an instruction that describes a task. Write a response that appropriately "
        + "completes the request.\n\n### Instruction:\nName three colors.\n\n### Response:\n"
    static let alpacaInput =
        "Below is an instruction that describes a task, paired with an input that provides "
        + "further context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
        + "Translate to English.\n\n### Input:\nBonjour\n\n### Response:\n"

    func request(_ fields: [String: JSONValue]) throws -> GenerateRequest {
        var payload = fields
        payload["model"] = payload["model"] ?? .string(model)
        return try GenerateRequest(payload: .object(payload))
    }

    func testTemplatesRenderAsDocumented() throws {
        XCTAssertEqual(try request(["prompt": "Name three colors."]).prompts[0].formatted, "Name three colors.")
        XCTAssertEqual(
            try request(["prompt": "Name three colors.", "template": "raw"]).prompts[0].formatted,
            "Name three colors.")
        XCTAssertEqual(
            try request(["prompt": "Name three colors.", "template": "alpaca"]).prompts[0].formatted,
            Self.alpacaNoInput)
        XCTAssertEqual(
            try request(["prompt": "Translate to English.", "input": "Bonjour", "template": "alpaca"])
                .prompts[0].formatted, Self.alpacaInput)
        // an empty input takes the no-input form (as the notebook's Prompter does)
        XCTAssertEqual(
            try request(["prompt": "Name three colors.", "input": "", "template": "alpaca"])
                .prompts[0].formatted, Self.alpacaNoInput)
        let list = try request([
            "template": "alpaca",
            "prompts": [
                "Name three colors.", ["instruction": "Translate to English.", "input": "Bonjour"],
                ["prompt": "Name three colors."],
            ],
        ])
        XCTAssertEqual(list.prompts.map(\.formatted), [Self.alpacaNoInput, Self.alpacaInput, Self.alpacaNoInput])
        XCTAssertEqual(
            list.prompts.map(\.prompt), ["Name three colors.", "Translate to English.", "Name three colors."])
        XCTAssertEqual(list.prompts.map(\.input), [nil, "Bonjour", nil])

        let custom: JSONValue = [
            "description": "Q/A", "response_split": "A:",
            "prompt_input": "Q: {instruction}\nContext: {input}\nA:", "prompt_no_input": "Q: {instruction}\nA:",
        ]
        let c = try request([
            "template": custom, "prompts": ["Why {input}?", ["instruction": "Who?", "input": "{instruction}"]],
        ])
        XCTAssertEqual(c.prompts.map(\.formatted), ["Q: Why {input}?\nA:", "Q: Who?\nContext: {instruction}\nA:"])
        let noInputForm = try request(["template": ["prompt_no_input": "<{instruction}>"], "prompt": "x"])
        XCTAssertEqual(noInputForm.prompts[0].formatted, "<x>")
    }

    // MARK: - Mistakes

    func testBadPayloadsFailPermanentlyNamingTheField() async throws {
        let otherArch = try adapterClaiming(architecture: "opt hidden=999")
        let cases: [([String: JSONValue], [String])] = [
            (["template": "chatml", "prompt": "x"], ["template", "\"chatml\""]),
            (["template": 3, "prompt": "x"], ["template", "number"]),
            (
                ["template": ["prompt_no_input": "no placeholder"], "prompt": "x"],
                ["template.prompt_no_input", "{instruction}"]
            ),
            (
                ["template": ["prompt_input": "{instruction} {input}"], "prompt": "x"],
                ["template.prompt_no_input", "required"]
            ),
            (
                ["template": ["prompt_no_input": "{instruction}", "prompt_input": "{instruction}"], "prompt": "x"],
                ["template.prompt_input", "{input}"]
            ),
            (
                ["template": ["prompt_no_input": "{instruction}", "prompt": "x"], "prompt": "x"],
                ["template", "\"prompt\""]
            ),
            (
                ["template": ["prompt_no_input": "{instruction}"], "prompt": "x", "input": "y"],
                ["input", "prompt_input"]
            ),
            (["prompt": "x", "input": "y"], ["input", "raw"]),
            (["prompts": ["x"], "input": "y"], ["input", "prompts"]),
            (["prompts": [1]], ["prompts[0]", "number"]),
            (["prompts": "x"], ["prompts", "list"]),
            (["prompts": []], ["prompts", "at least one"]),
            (["prompts": [["instruction": "a", "prompt": "b"]]], ["prompts[0]", "exactly one"]),
            (["prompts": ["ok", ["text": "a"]]], ["prompts[1]", "\"text\""]),
            (["prompts": ["ok", ["instruction": 5]]], ["prompts[1].instruction", "number"]),
            (["prompt": "x", "prompts": ["y"]], ["prompt", "prompts"]),
            (["model": 5, "prompt": "x"], ["model", "string"]),
            (["model": "no-such-model", "prompt": "x"], ["model", "no-such-model"]),
            (["prompt": "x", "max_new_tokens": "many"], ["max_new_tokens", "string"]),
            (["prompt": "x", "max_new_tokens": -1], ["max_new_tokens", "-1"]),
            (["prompt": "x", "temperature": "hot"], ["temperature", "string"]),
            (["prompt": "x", "temperature": 0.7], ["temperature applies only to sampling", "do_sample"]),
            (["prompt": "x", "seed": 3, "do_sample": false], ["seed applies only to sampling"]),
            (["prompt": "x", "top_p": 0], ["top_p"]),
            (["prompt": "x", "do_sample": "yes"], ["do_sample", "true or false"]),
            (["prompt": "x", "stop": [""]], ["stop[0]"]),
            (["prompt": "x", "max_tokens": 5], ["\"max_tokens\""]),
            (["prompt": "x", "adapter": 7], ["adapter", "string"]),
            (["prompt": "x", "adapter": "nobody"], ["adapter", "unknown adapter \"nobody\""]),
            (["prompt": "x", "adapter": "/no/such/dir"], ["adapter", "does not exist"]),
            (
                [
                    "prompt": "x", "model": .string(GenerateFixtures.model("post-ln-f32")),
                    "adapter": .string(GenerateFixtures.adapter("pre-ln-qv")),
                ], ["adapter", "post-ln-f32"]
            ),
            (["prompt": "x", "adapter": .string(otherArch)], ["adapter", "trained for base model", "opt hidden=999"]),
            (["prompt": "x", "adapter": .string(GenerateFixtures.adapter("pre-ln-bias-all"))], ["adapter", "merg"]),
            (["prompt": .string(String(repeating: "word ", count: 80))], ["prompt", "positions"]),
            (["prompts": ["ok", .string(String(repeating: "word ", count: 80))]], ["prompts[1]", "positions"]),
            (
                ["prompt": .string(String(repeating: "word ", count: 50)), "template": "alpaca"],
                ["prompt", "alpaca template", "positions"]
            ),
        ]
        for (fields, words) in cases {
            var payload = fields
            payload["model"] = payload["model"] ?? .string(model)
            do {
                let outcome = try await execute(.object(payload))
                XCTFail("\(fields): expected a failure, got \(outcome)")
            } catch let failure as JobFailure {
                XCTAssertFalse(failure.retryable, "\(fields): \(failure.message)")
                XCTAssertTrue(failure.message.hasPrefix("invalid generate payload: "), failure.message)
                for word in words {
                    XCTAssertTrue(failure.message.contains(word), "\(fields): '\(word)' not in: \(failure.message)")
                }
            }
        }
        do {
            _ = try await execute(nil)
            XCTFail("a missing payload should fail")
        } catch let failure as JobFailure {
            XCTAssertFalse(failure.retryable)
        }
    }

    func testSamplingWithoutASeedDiffersPerJobAndPositionsAreSaid() async throws {
        let first = try request(["prompt": "x", "do_sample": true]),
            second = try request(["prompt": "x", "do_sample": true])
        XCTAssertNotEqual(first.options.seed, second.options.seed, "two sampled jobs without a seed got one seed")
        XCTAssertEqual(try request(["prompt": "x", "do_sample": true, "seed": 9007199254740992]).options.seed, 1 << 53)
        XCTAssertEqual(try request(["prompt": "x"]).options.seed, 0)
        // Seeds past 2^53 are kept to the last digit (a Double would round 2^53 + 1 to 2^53).
        let big = try JSONValue(parsing: #"{"prompt": "x", "do_sample": true, "seed": 9007199254740993}"#)
        XCTAssertEqual(try request(big.objectValue ?? [:]).options.seed, 9_007_199_254_740_993)
        let largest = try JSONValue(parsing: #"{"prompt": "x", "do_sample": true, "seed": 9223372036854775807}"#)
        XCTAssertEqual(try request(largest.objectValue ?? [:]).options.seed, UInt64(Int64.max))
        XCTAssertThrowsError(try request(["prompt": "x", "do_sample": true, "seed": -1])) { error in
            XCTAssertTrue(
                "\(error)".contains("seed must be a whole number from 0 to 9223372036854775807, got -1"), "\(error)")
        }

        let outcome = try await execute([
            "model": .string(model), "prompt": "Hello", "max_new_tokens": 80, "do_sample": true,
        ])
        guard case .succeeded(let result, _) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertNotNil(result?["seed"]?.doubleValue)
        let warning = result?["warnings"]?.arrayValue?.first?.stringValue ?? ""
        XCTAssertTrue(warning.contains("not max_new_tokens 80: the model has 64 positions"), warning)
    }

    // MARK: - Helpers

    /// A copy of the pre-ln-qv adapter whose muwa_adapter.json says it was trained for another architecture.
    func adapterClaiming(architecture: String) throws -> String {
        let directory = state.appendingPathComponent("other-arch").path
        try FileManager.default.copyItem(atPath: GenerateFixtures.adapter("pre-ln-qv"), toPath: directory)
        let provenance = AdapterProvenance(
            name: "other-arch", baseModel: "big-model", baseModelDirectory: "/srv/big",
            architecture: architecture, jobID: nil)
        try provenance.write(directory: directory)
        return directory
    }

    func execute(_ payload: JSONValue?) async throws -> JobOutcome {
        let job = ClaimedJob(lease: JobLease(jobID: 1, workerID: "t", attempt: 1), kind: "generate", payload: payload)
        let context = JobContext(job: job, stateDirectory: state.path, logger: Logger(label: "t"))
        return try await GenerateJobExecutor(environment: ExecutorEnvironment(stateDirectory: state.path))
            .execute(job, context: context)
    }
}
