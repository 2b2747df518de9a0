// ModulePatternTests: the non-backtracking matcher for adapter_config.json regexes (issue 9, defect
// 4): Python `re.fullmatch` / `re.match` answers on the patterns peft configs use, catastrophic
// patterns such as `(.*)*X` answered in milliseconds, unsupported features refused by name; and the
// adapter rank / memory limits (defect 2): r = 2^20 or 2^40 refused, an adapter over the budget refused.
import Foundation
import OPTEngine
import XCTest

@testable import LoRAOps

final class ModulePatternTests: XCTestCase {
    let q = "model.decoder.layers.11.self_attn.q_proj"

    func matches(_ pattern: String, _ text: String) throws -> Bool { try ModulePattern(pattern).fullMatch(text) }

    /// Each expectation is what Python 3's re.fullmatch answers.
    func testFullMatchAsPython() throws {
        let cases: [(String, String, Bool)] = [
            (".*q_proj", q, true), ("q_proj", q, false), (#".*\.(q|v)_proj"#, q, true), (#".*\.(k|v)_proj"#, q, false),
            (#".*layers\.1[01]\..*"#, q, true), (#".*layers\.[0-9]\..*"#, q, false), (#".*\d{2}.*"#, q, true),
            (#".*\d{3}.*"#, q, false), (#"model\.decoder\.layers\.\d+\.self_attn\.[qkv]_proj"#, q, true),
            (#"(?:model\.)?decoder.*"#, q, true), (#"^model.*proj$"#, q, true), (#"[^.]+(\.[^.]+)*"#, q, true),
            (#".*?q_proj"#, q, true), (#"\w+(\.\w+){5}"#, q, true), (#"\w+(\.\w+){4}"#, q, false),
            (#"\w+(\.\w+){1,5}"#, q, true), (#"(?P<m>model)\..*"#, q, true), ("a|b|", "", true), ("a{,2}", "aa", true),
            ("a{2,}", "a", false), ("x{", "x{", true), (#"[\]a]+"#, "]a", true), ("[a-c-]+", "a-c", true),
            (#"\s*\S+"#, " q", true), (".", "\n", false), ("a$", "a\n", false), (#"\.\*"#, ".*", true),
        ]
        for (pattern, text, expected) in cases {
            XCTAssertEqual(try matches(pattern, text), expected, "\(pattern) on \(text)")
        }
    }

    func testPrefixMatchCapturesAsPython() throws {
        let scalars = Array(q.unicodeScalars)
        let groups = try XCTUnwrap(ModulePattern(#".*?\.[^.]*\.(\d+)\."#).prefixMatch(scalars))
        XCTAssertEqual(groups[1].map { String(String.UnicodeScalarView(scalars[$0])) }, "11")
        XCTAssertNil(try ModulePattern(#"decoder"#).prefixMatch(scalars))
        XCTAssertNotNil(try ModulePattern(#"model"#).prefixMatch(scalars))
    }

    /// Patterns that take a backtracking matcher exponential time answer at once.
    func testCatastrophicPatternsAnswerQuickly() throws {
        let long = String(repeating: "a", count: 400)
        let cases = [#"(.*)*X"#, #"(a*)*b"#, #"(a|a)*b"#, #"(a|aa)*c"#, #"(.*a){20}X"#, #"((a+)+)+b"#, #"(.*.*)*X"#]
        for pattern in cases {
            let start = Date()
            XCTAssertFalse(try matches(pattern, long), pattern)
            XCTAssertFalse(try matches(pattern, q), pattern)
            XCTAssertLessThan(Date().timeIntervalSince(start), 1, "\(pattern) took too long")
        }
        // Through the config, as the daemon meets it: 24 layers × 6 modules, answered in well under a second.
        let model = OPTConfig(vocabSize: 64, hiddenSize: 8, ffnDim: 16, numHiddenLayers: 24, numAttentionHeads: 2)
        let config = try AdapterConfig.parse(
            Data(#"{"r": 4, "target_modules": "(.*)*X"}"#.utf8), path: "adapter_config.json")
        let start = Date()
        XCTAssertThrowsError(try config.targets(for: model)) {
            XCTAssertTrue("\($0)".contains("selects no projection"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    func testUnsupportedFeaturesAreRefusedByName() throws {
        let cases: [(String, String)] = [
            (#"(?=q).*"#, "lookaround"), (#"(?<!x)q"#, "lookaround"), (#"(q)\1"#, "backreferences"),
            (#"(?P<a>q)(?P=a)"#, "backreferences"), (#"(?i)Q_PROJ"#, "inline flags"), (#"\bq"#, "word boundaries"),
            (#"q*+"#, "possessive"), (#"a{1000}"#, "repetition bounds"), (#"(q"#, "missing ')'"),
            (#"q)"#, "unbalanced"),
            (#"*q"#, "nothing to repeat"), (#"[q"#, "unterminated"),
            (String(repeating: "a", count: 600), "longer than"),
            (String(repeating: "(a{99})", count: 60), "too complex"),
        ]
        for (pattern, word) in cases {
            XCTAssertThrowsError(try ModulePattern(pattern), pattern) { error in
                XCTAssertTrue((error as? ModulePattern.Refusal)?.reason.contains(word) == true, "\(pattern): \(error)")
            }
        }
        let config = try AdapterConfig.parse(
            Data(#"{"r": 4, "target_modules": "(q)\\1"}"#.utf8), path: "adapter_config.json")
        let model = OPTConfig(vocabSize: 64, hiddenSize: 8, ffnDim: 16, numHiddenLayers: 1, numAttentionHeads: 2)
        XCTAssertThrowsError(try config.targets(for: model)) { error in
            XCTAssertTrue("\(error)".contains("target_modules regex"), "\(error)")
            XCTAssertTrue("\(error)".contains("backreferences"), "\(error)")
        }
    }

    // MARK: - rank and memory (defect 2)

    func testHugeRanksAndAdaptersOverTheBudgetAreRefused() throws {
        for r in ["1099511627776", "1048576", "16385"] {
            XCTAssertThrowsError(
                try AdapterConfig.parse(
                    Data(#"{"r": \#(r), "target_modules": ["q_proj"]}"#.utf8),
                    path: "adapter_config.json"), r
            ) {
                XCTAssertTrue("\($0)".contains("'r' must be at most 16384"), "\($0)")
            }
        }
        XCTAssertThrowsError(
            try AdapterConfig.parse(
                Data(#"{"r": 4, "rank_pattern": {"q_proj": 1048576}, "target_modules": ["q_proj"]}"#.utf8),
                path: "a.json"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("muwa-rank-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"r": 16384, "target_modules": ["q_proj", "fc1"]}"#.write(
            toFile: dir + "/adapter_config.json", atomically: true,
            encoding: .utf8)
        let model = OPTConfig(vocabSize: 64, hiddenSize: 768, ffnDim: 3072, numHiddenLayers: 12, numAttentionHeads: 12)
        // 12 layers × 16384 × ((768 + 768) + (768 + 3072)) floats ≈ 4.2 GB, refused before any allocation.
        XCTAssertThrowsError(
            try LoRAAdapter.load(directory: dir, model: model, memoryBudget: MemoryBudget(bytes: 1 << 30))
        ) {
            guard case .overMemoryBudget(let what, let estimate, _)? = $0 as? EngineError else {
                return XCTFail("\($0)")
            }
            XCTAssertEqual(estimate, 12 * 16384 * (1536 + 3840) * 4)
            XCTAssertTrue(what.contains(dir) && what.contains("16384"), what)
        }
        XCTAssertEqual(
            LoRALayout.checkedParameterCount(
                targets: [AdapterTarget(layer: 0, module: .fc1, r: .max / 2, alpha: 1, scale: 1)], model: model), nil)
    }
}
