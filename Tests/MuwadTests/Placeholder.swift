import XCTest

final class MuwadTestsPlaceholder: XCTestCase {}
