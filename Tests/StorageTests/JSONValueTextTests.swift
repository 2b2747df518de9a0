// JSONValue.jsonText with keys jsonb cannot store as they are (U+0000): found by the payload fuzz
// target (fuzz/regressions/payload/crash-3825ddf0…: a payload key "to\u0000p_p").
import Storage
import XCTest

final class JSONValueTextTests: XCTestCase {
    /// Keys are sorted as they are written (U+0000 → U+FFFD), so the text reads sorted and writing the
    /// parsed text again gives the same text.
    func testKeysWithNULAreSortedByTheirWrittenForm() throws {
        let value: JSONValue = ["to\u{0}p": 1, "top": 2]
        XCTAssertEqual(value.jsonText, "{\"top\":2,\"to\u{FFFD}p\":1}")
        XCTAssertEqual(try JSONValue(parsing: value.jsonText).jsonText, value.jsonText)
    }

    /// Two keys that are written the same are written once (the one whose original key sorts last).
    func testKeysThatBecomeEqualAreWrittenOnce() throws {
        let value: JSONValue = ["a\u{0}": 1, "a\u{FFFD}": 2, "b": ["x\u{0}": true, "x\u{FFFD}": false]]
        XCTAssertEqual(value.jsonText, "{\"a\u{FFFD}\":2,\"b\":{\"x\u{FFFD}\":false}}")
        XCTAssertEqual(try JSONValue(parsing: value.jsonText).jsonText, value.jsonText)
    }

    /// The fuzz input itself: a generate payload with a NUL inside a key.
    func testFuzzedPayloadTextIsStable() throws {
        let text = #"{"top_k": 50, "to\u0000p_p": 0.9, "repetition_penalty": 1.1, "stop": ["\n\n"]}"#
        let value = try JSONValue(parsing: text)
        XCTAssertEqual(try JSONValue(parsing: value.jsonText).jsonText, value.jsonText)
    }
}
