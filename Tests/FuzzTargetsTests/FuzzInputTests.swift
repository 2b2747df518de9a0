// FuzzInput: how one input is split into files.
import FuzzTargets
import XCTest

final class FuzzInputTests: XCTestCase {
    func testSplitsAtEverySeparatorAndKeepsEmptyParts() {
        let a = Array("a".utf8), b = Array("bc".utf8)
        let joined = FuzzInput.join([a, [], b])
        XCTAssertEqual(FuzzInput.split(joined), [a, [], b])
        XCTAssertEqual(FuzzInput.split(a), [a])
        XCTAssertEqual(FuzzInput.split([]), [[]])
    }

    func testSelectorIsTheFirstByte() {
        let input = FuzzInput(FuzzInput.join([Array("x".utf8)], selector: 7))
        XCTAssertEqual(input.selectorAndRest.0, 7)
        XCTAssertEqual(input.selectorAndRest.1, Array("x".utf8))
        XCTAssertEqual(FuzzInput([]).selectorAndRest.0, 0)
    }

    func testAPartialSeparatorIsData() {
        let data = Array("x\n--8<-".utf8)
        XCTAssertEqual(FuzzInput.split(data), [data])
    }
}
