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

    /// The C widening kernels (what Tensor.toFloatArray and every BF16/F16 matmul use) against the Swift
    /// conversions, for every one of the 65,536 bit patterns of each 16-bit type (NaNs: both are NaN).
    func testTheCKernelsWidenEveryBitPatternAsSwiftDoes() {
        let patterns = (0...0xFFFF).map { UInt16($0) }
        for dtype in [DType.bf16, .f16] {
            let region = ByteRegion(allocating: patterns.count * 2)
            for (i, p) in patterns.enumerated() {
                region.mutableBase!.storeBytes(of: p, toByteOffset: i * 2, as: UInt16.self)
            }
            let widened = Tensor(dtype: dtype, shape: [patterns.count], region: region).toFloatArray()
            var mismatches = 0
            for (p, value) in zip(patterns, widened) {
                let swift = dtype == .bf16 ? bf16ToFloat(p) : f16ToFloat(p)
                if swift.isNaN ? !value.isNaN : swift.bitPattern != value.bitPattern { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(dtype): \(mismatches) bit patterns widen differently in C and Swift")
        }
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
