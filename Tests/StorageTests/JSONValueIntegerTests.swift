// Integers past 2^53 (64-bit seeds) survive a payload's trip through JSONValue to the last digit; smaller
// numbers stay plain doubles.
import Storage
import XCTest

final class JSONValueIntegerTests: XCTestCase {
    func testBigIntegersAreKeptExactly() throws {
        let text = #"{"a":9007199254740993,"b":9223372036854775807,"c":-9007199254740995,"d":3,"e":1.5,"f":1e300}"#
        let value = try JSONValue(parsing: text)
        XCTAssertEqual(value["a"], .integer(9_007_199_254_740_993))
        XCTAssertEqual(value["b"]?.int64Value, Int64.max)
        XCTAssertEqual(value["c"]?.int64Value, -9_007_199_254_740_995)
        XCTAssertEqual(value["d"], .number(3))
        XCTAssertEqual(value["d"], 3)
        XCTAssertEqual(value["e"], .number(1.5))
        XCTAssertNil(value["e"]?.int64Value)
        XCTAssertEqual(value["f"]?.doubleValue, 1e300)
        XCTAssertEqual(value.jsonText, text.replacingOccurrences(of: "1e300", with: "1e+300"))
        XCTAssertEqual(try JSONValue(parsing: value.jsonText), value)
        XCTAssertEqual(JSONValue.exact(1 << 53), .number(9_007_199_254_740_992))
        XCTAssertEqual(JSONValue.exact((1 << 53) + 1), .integer(9_007_199_254_740_993))
        XCTAssertEqual(value["a"]?.typeName, "number")
    }

    /// Found by the payload fuzz: a big number with a fraction ("922337203642738790.75") is a whole Double,
    /// once written as "9.223372036427388e+17" it parsed back as an integer and printed differently.
    func testBigWholeDoublesRoundTripToTheSameText() throws {
        for text in [
            #"{"x":922337203642738790.75}"#, #"{"x":90071992547409930.0002}"#, #"{"x":-1.5e18}"#, #"{"x":1e19}"#,
        ] {
            let value = try JSONValue(parsing: text)
            let written = value.jsonText
            let again = try JSONValue(parsing: written)
            XCTAssertEqual(again.jsonText, written, text)
            XCTAssertEqual(again["x"]?.doubleValue, value["x"]?.doubleValue, text)
        }
        XCTAssertEqual(try JSONValue(parsing: #"{"x":-1.5e18}"#).jsonText, #"{"x":-1500000000000000000}"#)
    }
}
