import XCTest

final class ExecutorsTestsPlaceholder: XCTestCase {}
