import XCTest

final class JobQueueTestsPlaceholder: XCTestCase {}
