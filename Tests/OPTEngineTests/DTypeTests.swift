import XCTest
@testable import OPTEngine

final class DTypeTests: XCTestCase {
    func testBF16RoundTripAndRounding() {
        XCTAssertEqual(bf16ToFloat(floatToBF16(1.0)), 1.0)
        XCTAssertEqual(bf16ToFloat(floatToBF16(-3.5)), -3.5)
        // 1 + 2^-8 lies exactly halfway between two bf16 values: ties go to even (1.0).
        XCTAssertEqual(bf16ToFloat(floatToBF16(1.0 + 1.0 / 256)), 1.0)
        XCTAssertEqual(bf16ToFloat(floatToBF16(1.0 + 3.0 / 256)), 1.0 + 4.0 / 256)
    }

    func testF16Conversion() {
        XCTAssertEqual(f16ToFloat(floatToF16(0.5)), 0.5)
        XCTAssertEqual(f16ToFloat(floatToF16(65504)), 65504)
    }

    func testTensorConvertsEveryDType() {
        let values: [Float] = [1, -2, 0.5, 4]
        let f32 = Tensor.f32(values, shape: [2, 2])
        XCTAssertEqual(f32.toFloatArray(), values)
        let region = ByteRegion(allocating: 8)
        let bits = values.map { floatToBF16($0) }
        for (i, b) in bits.enumerated() { region.mutableBase!.storeBytes(of: b, toByteOffset: i * 2, as: UInt16.self) }
        XCTAssertEqual(Tensor(dtype: .bf16, shape: [4], region: region).toFloatArray(), values)
    }
}
