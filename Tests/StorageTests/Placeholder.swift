import XCTest

final class StorageTestsPlaceholder: XCTestCase {}
