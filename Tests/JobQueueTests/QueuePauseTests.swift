// Pausing a queue: its queued jobs wait (another queue's still run), resuming lets them run at once; only
// valid queue names are accepted.
import Foundation
import JobQueue
import Storage
import XCTest
import TestSupport

final class QueuePauseTests: XCTestCase {
    func testAPausedQueueWaitsAndResumesWhileOthersRun() async throws {
        let database = try await TestDatabase.migrated("muwa_test_queue_pause")
        let paused = try await database.scalar("SELECT muwa.pause_queue('default', reason => 'maintenance')")
        XCTAssertEqual(paused, "t")
        let again = try await database.scalar("SELECT muwa.pause_queue('default')")
        XCTAssertEqual(again, "f", "pausing twice changes nothing")
        let waiting = try await database.scalar("SELECT muwa.enqueue('ping', '{}')") ?? "?"
        let other = try await database.scalar("SELECT muwa.enqueue('ping', '{}', queue => 'other')") ?? "?"
        var configuration = testConfiguration(kinds: ["ping"])
        configuration.queues = ["default", "other"]
        try await withProducer(
            database, configuration: configuration, executors: [SleepExecutor(tracker: ConcurrencyTracker())],
            listen: true
        ) {
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [other]) == "succeeded"
            }
            // The claim that took the other queue's job saw this one too (enqueued first, same claim query).
            let status = try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [waiting])
            XCTAssertEqual(status, "queued")
            let resumed = try await database.scalar("SELECT muwa.resume_queue('default')")
            XCTAssertEqual(resumed, "t")
            try await waitUntil {
                try await database.scalar("SELECT status FROM muwa.jobs WHERE id = $1", [waiting]) == "succeeded"
            }
        }
        do {
            _ = try await database.execute("SELECT muwa.pause_queue('no spaces allowed')")
            XCTFail("a bad queue name was paused")
        } catch let error as StorageError {
            XCTAssertTrue(error.message.contains("is not a queue name"), error.message)
        }
    }
}
