// The pure pieces of the evaluation against Python's answers (cases/*.json): the official SQuAD v1.1
// metric with the notebook's expansion and containment, normalization, PIQA's parse order,
// Levenshtein distances, Python's str semantics, the templates and the perplexity windows.
import Foundation
import XCTest

@testable import Evaluation
@testable import Executors

final class EvaluationMetricTests: XCTestCase {
    func testSquadMetricCasesEqualTheOfficialScript() throws {
        let doc = try EvalFixtures.object("cases/squad_metric.json")
        let cases = try XCTUnwrap(doc["cases"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 150)
        for c in cases {
            let prediction = try XCTUnwrap(c["prediction"] as? String)
            let answers = try XCTUnwrap(c["answers"] as? [String])
            let what = "prediction \(prediction.debugDescription) answers \(answers)"
            let score = SquadMetric.muwaScore(prediction: prediction, answers: answers)
            XCTAssertEqual(score.expandedAnswers, try XCTUnwrap(c["expanded"] as? [String]), what)
            XCTAssertEqual(score.containedIndex, c["contained"] as? Int, what)
            XCTAssertTrue(
                score.finalPrediction.unicodeScalars.elementsEqual(
                    try XCTUnwrap(c["final_prediction"] as? String).unicodeScalars), what)
            XCTAssertEqual(score.f1, try XCTUnwrap(c["f1"] as? Double), what)
            XCTAssertEqual(score.exactMatch, try XCTUnwrap(c["exact_match"] as? Double), what)
            let raw = SquadMetric.score(prediction: prediction, answers: answers)
            XCTAssertEqual(raw.f1, try XCTUnwrap(c["f1_raw"] as? Double), what)
            XCTAssertEqual(raw.exactMatch, try XCTUnwrap(c["exact_match_raw"] as? Double), what)
        }
    }

    func testNormalizationEqualsTheOfficialScript() throws {
        for c in try EvalFixtures.list("cases/normalize.json") {
            let text = try XCTUnwrap(c["text"] as? String)
            let expected = try XCTUnwrap(c["tokens"] as? [String]).map { Array($0.unicodeScalars) }
            XCTAssertEqual(SquadMetric.normalizedTokens(text), expected, text.debugDescription)
            XCTAssertTrue(
                SquadMetric.normalize(text).unicodeScalars.elementsEqual(
                    try XCTUnwrap(c["normalized"] as? String).unicodeScalars), text.debugDescription)
        }
    }

    func testEmptyPredictionAndEmptyGoldScoreZeroF1() {
        XCTAssertEqual(SquadMetric.f1(prediction: "", gold: ""), 0)
        XCTAssertEqual(SquadMetric.f1(prediction: "the", gold: "a"), 0)
        XCTAssertTrue(SquadMetric.exactMatch(prediction: "The", gold: ""))
    }

    func testPIQAParseCasesEqualTheNotebook() throws {
        let cases = try EvalFixtures.list("cases/piqa_parse.json")
        XCTAssertGreaterThanOrEqual(cases.count, 60)
        for c in cases {
            let p = try XCTUnwrap(c["prediction"] as? String)
            let sol1 = try XCTUnwrap(c["sol1"] as? String), sol2 = try XCTUnwrap(c["sol2"] as? String)
            let scalars = PythonText.scalars(p)
            XCTAssertEqual(PIQAParse.regexChoice(scalars), c["regex"] as? Int, "regex on \(p.debugDescription)")
            XCTAssertEqual(PIQAParse.optionChoice(scalars), c["option"] as? Int, "option on \(p.debugDescription)")
            XCTAssertEqual(
                [PIQAParse.levenshtein(p, sol1), PIQAParse.levenshtein(p, sol2)],
                try XCTUnwrap(c["levenshtein"] as? [Int]), p.debugDescription)
            let choice = PIQAParse.choose(prediction: p, sol1: sol1, sol2: sol2)
            XCTAssertEqual(choice.choice, try XCTUnwrap(c["choice"] as? Int), p.debugDescription)
            XCTAssertEqual(choice.rule.rawValue, try XCTUnwrap(c["rule"] as? String), p.debugDescription)
        }
    }

    func testLevenshteinEqualsPythonLevenshtein() throws {
        for c in try EvalFixtures.list("cases/levenshtein.json") {
            let a = try XCTUnwrap(c["a"] as? String), b = try XCTUnwrap(c["b"] as? String)
            XCTAssertEqual(PIQAParse.levenshtein(a, b), try XCTUnwrap(c["distance"] as? Int), "\(a) / \(b)")
        }
    }

    /// isspace and `\w` for every code point Python's Unicode database knows; lower for every code point
    /// it changes, and final sigma in context.
    func testPythonStringSemantics() throws {
        let doc = try EvalFixtures.object("cases/python_text.json")
        let version = try XCTUnwrap(doc["unidata_version"] as? String).split(separator: ".").compactMap { Int($0) }
        let known = { (s: Unicode.Scalar) -> Bool in
            guard let age = s.properties.age else { return false }
            return (age.major, age.minor) <= (version[0], version[1])
        }
        let spaces = Set(try XCTUnwrap(doc["isspace"] as? [Int]))
        var words = [Bool](repeating: false, count: 0x110000)
        for range in try XCTUnwrap(doc["word_ranges"] as? [[Int]]) { for c in range[0]...range[1] { words[c] = true } }
        var mismatches: [String] = []
        for value in 0..<0x110000 {
            guard let s = Unicode.Scalar(value) else { continue }
            if PythonText.isSpace(s) != spaces.contains(value) {
                mismatches.append("isspace U+\(String(value, radix: 16))")
            }
            if known(s), PythonText.isWord(s) != words[value] { mismatches.append("\\w U+\(String(value, radix: 16))") }
        }
        for pair in try XCTUnwrap(doc["lower"] as? [[Any]]) {
            let value = try XCTUnwrap(pair[0] as? Int), lowered = try XCTUnwrap(pair[1] as? String)
            guard let s = Unicode.Scalar(value), known(s) else { continue }
            if value != 0x3A3, PythonText.lower([s]) != Array(lowered.unicodeScalars) {
                mismatches.append("lower U+\(String(value, radix: 16))")
            }
        }
        XCTAssertEqual(Array(mismatches.prefix(20)), [], "\(mismatches.count) code points differ from Python")
        for c in try XCTUnwrap(doc["lower_strings"] as? [[String: String]]) {
            let text = try XCTUnwrap(c["text"]), lowered = try XCTUnwrap(c["lower"])
            XCTAssertEqual(PythonText.lower(text), Array(lowered.unicodeScalars), text)
        }
    }

    func testTemplatesAreTheNotebooks() {
        XCTAssertEqual(
            TaskPrompts.squad(question: "Q?", context: "C."),
            "Below is an instruction that describes a task, paired with an input that provides further context. "
                + "Write a response that appropriately completes the request.\n\n### Instruction:\n"
                + "Generate a very short, precise answer to this Question:\nQ?\n\n### Input:\nC.\n\n"
                + "### Short Answer:\n")
        XCTAssertEqual(
            TaskPrompts.squad(question: "Q?", context: ""),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
                + "request.\n\n### Instruction:\nGenerate a very short, precise answer to this Question:\nQ?\n\n"
                + "### Short Answer:\n")
        XCTAssertEqual(
            TaskPrompts.piqa(goal: "G", sol1: "A {input}", sol2: "B"),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
                + "request.\n\n### Instruction:\nYou will be presented with a task and two possible solutions. Your "
                + "goal is to select the solution that best achieves the given task.\nTask: G\nSolutions:\n  1. "
                + "A {input}\n  2. B\n  \nPlease respond with either \"1\" or \"2\" to indicate the most appropriate "
                + "solution.\n\n### Response:\n")
        let lm = TaskPrompts.piqaLoglikelihood(goal: "G?", solution: "Do it.")
        XCTAssertEqual(lm.context, "Question: G?\nAnswer:")
        XCTAssertEqual(lm.continuation, " Do it.")
    }

    func testResponseIsTheTextBetweenTheFirstAndSecondMarker() {
        let t = PromptTemplate.squad
        XCTAssertEqual(t.response(in: "x ### Short Answer:\n  42 \n"), "42")
        XCTAssertEqual(t.response(in: "x ### Short Answer: a ### Short Answer: b"), "a")
        XCTAssertEqual(t.response(in: "x ### Short Answer:\u{2003}\u{1c}"), "")
        XCTAssertNil(t.response(in: "no marker"))
    }

    func testPerplexityWindowsFollowTheNotebook() {
        let w = Perplexity.windows(tokenCount: 100, maxLength: 32, stride: 16)
        XCTAssertEqual(w.first, PerplexityWindow(begin: 0, end: 32, firstTarget: 1))
        XCTAssertEqual(w[1], PerplexityWindow(begin: 16, end: 48, firstTarget: 32))
        XCTAssertEqual(w.last?.end, 100)
        XCTAssertEqual(w.reduce(0) { $0 + $1.targetCount }, 99)  // every token after the first, once
        XCTAssertEqual(
            Perplexity.windows(tokenCount: 10, maxLength: 1024, stride: 512),
            [PerplexityWindow(begin: 0, end: 10, firstTarget: 1)])
        let clamped = Perplexity.effective(maxLength: 1024, stride: 512, positions: 64)
        XCTAssertEqual(clamped.maxLength, 64)
        XCTAssertEqual(clamped.stride, 64)
        XCTAssertEqual(Perplexity.effective(maxLength: 32, stride: 16, positions: 2048).maxLength, 32)
    }
}
