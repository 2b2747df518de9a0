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
}
