// ProgressMeter: ETA from this attempt's own pace, tokens per second, the fields added to progress_detail,
// and a log line at most once per interval.
import Foundation
import Storage
import XCTest

@testable import JobQueue
import TestSupport

final class ProgressMeterTests: XCTestCase {
    func testETAAndThroughputFollowThisAttemptsPace() {
        let start = ContinuousClock.now
        var meter = ProgressMeter(start: start)
        XCTAssertNil(meter.etaSeconds(at: start + .seconds(5)), "no ETA before any progress")
        // A resumed job: starts at 50%, reaches 60% after 10 s → 40% left at 1%/s.
        meter.record(fraction: 0.5, tokens: 0)
        meter.record(fraction: 0.6, tokens: 2_000)
        let now = start + .seconds(10)
        XCTAssertEqual(meter.etaSeconds(at: now) ?? -1, 40, accuracy: 1e-9)
        XCTAssertEqual(meter.tokensPerSecond(at: now) ?? -1, 200, accuracy: 1e-9)
        let detail = meter.annotate(["step": 120, "loss": 2.5], at: now)
        XCTAssertEqual(detail["step"], 120)
        XCTAssertEqual(detail["eta_seconds"], 40)
        XCTAssertEqual(detail["tokens_per_second"], 200)
        XCTAssertEqual(detail["elapsed_seconds"], 10)
        meter.record(fraction: 1, tokens: nil)
        XCTAssertEqual(meter.etaSeconds(at: now), 0)
    }

    func testLinesComeOncePerInterval() {
        let start = ContinuousClock.now
        var meter = ProgressMeter(start: start)
        XCTAssertNil(meter.line(every: 30, detail: nil, at: start + .seconds(31)), "no line before any progress")
        meter.record(fraction: 0.25, tokens: nil)
        meter.record(fraction: 0.5, tokens: 900)
        let line = meter.line(
            every: 30, detail: ["step": 50, "max_steps": 100, "loss": 2.3125, "phase": "base"], at: start + .seconds(60)
        )
        XCTAssertEqual(
            line,
            "progress 50.0%, loss 2.312, max_steps 100, phase base, step 50, 15.0 tokens/s, elapsed 60.0 s, ETA 2 min")
        XCTAssertNil(meter.line(every: 30, detail: nil, at: start + .seconds(70)))
        XCTAssertNotNil(meter.line(every: 30, detail: nil, at: start + .seconds(91)))
    }

    func testTheDaemonWritesThePaceIntoProgressDetail() async throws {
        let database = try await TestDatabase.migrated("muwa_test_progress_detail")
        let configuration = testConfiguration(kinds: ["ping"])
        let id = try await database.scalar("SELECT muwa.enqueue('ping', '{\"ms\": 1500}')") ?? "?"
        try await withProducer(
            database, configuration: configuration, executors: [SleepExecutor(tracker: ConcurrencyTracker())]
        ) {
            try await waitUntil(seconds: 20) {
                let eta = try await database.scalar(
                    "SELECT progress_detail->>'eta_seconds' FROM muwa.jobs WHERE id = $1 AND status = 'running'", [id])
                return eta.flatMap(Double.init) != nil
            }
            let elapsed = try await database.scalar(
                "SELECT progress_detail->>'elapsed_seconds' FROM muwa.jobs WHERE id = $1", [id])
            XCTAssertNotNil(elapsed.flatMap(Double.init))
        }
    }
}
