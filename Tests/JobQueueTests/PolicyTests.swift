// Pure pieces: retry backoff, the doorbell, configuration checks.
import Foundation
import JobQueue
import XCTest

final class PolicyTests: XCTestCase {
    func testRetryBackoffIsExponentialCappedAndJittered() {
        let policy = RetryPolicy(baseSeconds: 10, maximumSeconds: 60, jitter: 0.25)
        XCTAssertEqual(policy.nominalDelay(afterAttempt: 1), 10)
        XCTAssertEqual(policy.nominalDelay(afterAttempt: 2), 20)
        XCTAssertEqual(policy.nominalDelay(afterAttempt: 3), 40)
        XCTAssertEqual(policy.nominalDelay(afterAttempt: 4), 60)
        XCTAssertEqual(policy.nominalDelay(afterAttempt: 1000), 60)
        XCTAssertEqual(policy.delay(afterAttempt: 2, random: 0), 20)
        XCTAssertEqual(policy.delay(afterAttempt: 2, random: 1), 15)
        for _ in 0..<100 {
            XCTAssertTrue((7.5...10).contains(policy.delay(afterAttempt: 1)))
        }
    }

    func testDoorbellRemembersARingAndTimesOut() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        let rung = await bell.wait(seconds: 5)
        XCTAssertTrue(rung, "a ring before the wait is kept")
        let started = Date()
        let timedOut = await bell.wait(seconds: 0.1)
        XCTAssertFalse(timedOut, "two rings collapse into one")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.09)
    }

    func testDoorbellWakesAWaiter() async {
        let bell = Doorbell()
        let started = Date()
        async let woke = bell.wait(seconds: 10)
        try? await Task.sleep(for: .milliseconds(50))
        bell.ring()
        let result = await woke
        XCTAssertTrue(result)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testConfigurationProblemsAreSentences() {
        var configuration = testConfiguration(kinds: [])
        configuration.heartbeatSeconds = 5
        configuration.leaseSeconds = 6
        let problems = configuration.problems()
        XCTAssertTrue(problems.contains("no job kinds to serve"), "\(problems)")
        XCTAssertTrue(problems.contains { $0.contains("at most half the lease") }, "\(problems)")
        XCTAssertEqual(testConfiguration(kinds: ["ping"]).problems(), [])
    }
}
