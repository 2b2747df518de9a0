import XCTest

final class LoRAOpsTestsPlaceholder: XCTestCase {}
