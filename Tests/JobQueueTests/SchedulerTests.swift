// Periodic jobs: cron expressions (UTC) give the expected next times; a due schedule enqueues exactly one job
// per time however many schedulers race; a schedule with an unreadable cron is disabled with the reason.
import Foundation
import JobQueue
import Storage
import XCTest
import TestSupport

final class SchedulerTests: XCTestCase {
    func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text) ?? .distantPast
    }

    func next(_ cron: String, after text: String) throws -> String? {
        try CronSchedule(cron).next(after: date(text)).map { ISO8601DateFormatter().string(from: $0) }
    }

    func testCronNextTimes() throws {
        XCTAssertEqual(try next("* * * * *", after: "2026-12-04T16:55:30Z"), "2026-12-04T16:56:00Z")
        XCTAssertEqual(try next("0 3 * * *", after: "2026-12-04T16:55:00Z"), "2026-12-05T03:00:00Z")
        XCTAssertEqual(try next("*/15 * * * *", after: "2026-12-04T16:55:00Z"), "2026-12-04T17:00:00Z")
        XCTAssertEqual(try next("30 9 * * 1-5", after: "2026-12-04T16:55:00Z"), "2026-12-07T09:30:00Z")  // Fri → Mon
        XCTAssertEqual(try next("0 0 1 * *", after: "2026-12-04T16:55:00Z"), "2027-01-01T00:00:00Z")
        XCTAssertEqual(try next("@weekly", after: "2026-12-04T16:55:00Z"), "2026-12-06T00:00:00Z")  // Sunday
        // day 13 OR Friday
        XCTAssertEqual(try next("0 12 13 * 5", after: "2026-12-04T16:55:00Z"), "2026-12-11T12:00:00Z")
        XCTAssertEqual(try next("0 0 29 2 *", after: "2026-12-04T16:55:00Z"), "2028-02-29T00:00:00Z")
        XCTAssertNil(try next("0 0 30 2 *", after: "2026-12-04T16:55:00Z"))
        XCTAssertEqual(try next("0 0 * * 7", after: "2026-12-04T16:55:00Z"), "2026-12-06T00:00:00Z")  // 7 is Sunday
    }

    func testBadCronSaysWhy() {
        for (cron, fragment) in [
            ("* * * *", "has 4 fields"), ("61 * * * *", "outside 0–59"), ("* * * JAN *", "names like MON"),
            ("*/0 * * * *", "bad step"), ("5-1 * * * *", "outside"),
        ] {
            XCTAssertThrowsError(try CronSchedule(cron), cron) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(cron): \(error)")
            }
        }
    }

    func testADueScheduleEnqueuesOneJobPerTimeAcrossRacingWorkers() async throws {
        let database = try await TestDatabase.migrated("muwa_test_scheduler")
        _ = try await database.execute(#"SELECT muwa.schedule('tick', '* * * * *', 'ping', '{"from": "schedule"}')"#)
        _ = try await database.execute("SELECT muwa.schedule('broken', '99 * * * *', 'ping')")
        // Three workers, each with its own connection.
        let schedulers = (0..<3).map { index in
            Scheduler(
                store: JobStore(
                    database: Database(
                        settings: database.settings, label: "scheduler-\(index)",
                        logger: TestDatabase.quietLogger)),
                logger: TestDatabase.quietLogger)
        }

        // First round: next times computed, nothing due yet.
        let first = await schedulers[0].tickOnce()
        XCTAssertEqual(first, [])
        let next = try await database.scalar("SELECT next_run_at > now() FROM muwa.schedules WHERE name = 'tick'")
        XCTAssertEqual(next, "t")
        let broken = try await firstRow(
            database, "SELECT enabled, last_error FROM muwa.schedules WHERE name = 'broken'")
        XCTAssertEqual(try broken.bool("enabled"), false)
        XCTAssertTrue(try broken.string("last_error").contains("outside 0–59"))

        // Make it due, then three schedulers race: one job.
        _ = try await database.execute(
            "UPDATE muwa.schedules SET next_run_at = now() - interval '1 minute' WHERE name = 'tick'")
        async let a = schedulers[0].tickOnce()
        async let b = schedulers[1].tickOnce()
        async let c = schedulers[2].tickOnce()
        let all = await a + b + c
        XCTAssertEqual(all.count, 1)
        let jobs = try await database.scalar("SELECT count(*) FROM muwa.jobs WHERE payload->>'from' = 'schedule'")
        XCTAssertEqual(jobs, "1")
        let row = try await firstRow(
            database, "SELECT last_job_id, next_run_at > now() AS ahead FROM muwa.schedules WHERE name = 'tick'")
        XCTAssertEqual(Int64(try row.int("last_job_id")), all.first)
        XCTAssertTrue(try row.bool("ahead"))
        let again = await schedulers[1].tickOnce()
        XCTAssertEqual(again, [], "not due again until the next minute")
        let gone = try await database.scalar("SELECT muwa.unschedule('tick')")
        XCTAssertEqual(gone, "t")
    }
}
