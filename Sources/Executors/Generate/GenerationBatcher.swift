// GenerationBatcher: continuous batching across jobs. One per loaded base model (ModelCache keeps it beside
// the model): every generate job running on that model hands its sequences to the same batcher, and one
// decode loop — on a thread of its own, never on Swift's cooperative pool — runs them as one batch
// (BatchDecoder): sequences join when a row is free and leave when they finish, between decode steps, each
// with its own adapter, sampling settings and seed. A short job's sequences therefore run beside a long
// job's instead of after it, and what a sequence produces does not depend on what it ran beside.
//
// Rows go to the job with the fewest rows running (then to the oldest), so one job with many prompts cannot
// keep another out. A job asked to stop (cancel, shutdown, time limit; `shouldStop`) or whose task is
// cancelled leaves at the next step with what it has. The loop thread exits when there is nothing to do;
// the next submission starts another.
import Foundation
import OPTEngine

/// One sequence a job hands to the batcher.
struct BatchedSequence: @unchecked Sendable {
    var promptIds: [Int]
    var options: GenerationOptions
    /// The job's adapter as a delta that treats every row alike (LoRAOps' AdapterBatch(adapter:model:)).
    var delta: ProjectionDelta?
}

/// A sequence the batcher finished (or stopped while it ran).
struct BatchedOutput: Sendable {
    /// Its index in the job's list.
    var index: Int
    var output: GenerationOutput
    /// From the job's submission to this sequence's end.
    var milliseconds: Double
}

/// What the batcher did for one job.
struct BatchedRun: Sendable {
    /// Finished sequences, and those stopped while running (finish reason `cancelled`), by index; sequences
    /// that never started are missing when the job stopped.
    var outputs: [BatchedOutput]
    /// True when the job left because it was asked to stop.
    var stopped: Bool
    /// The most rows (of any job) one decode step had while this job ran.
    var maxBatchRows: Int
}

final class GenerationBatcher: @unchecked Sendable {
    let generator: Generator
    let maxRows: Int
    /// KV-cache bytes the rows may hold together; a sequence waits while it would not fit (one always runs).
    let maxCacheBytes: Int
    /// The step gate (``holdSteps(after:)``): the loop waits before a step while `statistics.steps` has reached
    /// `holdAtStep`; `waitingAtGate` says it is waiting there.
    private let gate = NSCondition()
    private var holdAtStep: Int?
    private var waitingAtGate = false

    private let lock = NSLock()
    private var tickets: [BatchTicket] = []
    private var looping = false
    private var decoder: BatchDecoder?
    private var statistics = BatcherStatistics()

    init(generator: Generator, maxRows: Int = 16, maxCacheBytes: Int? = nil) {
        self.generator = generator
        self.maxRows = max(1, maxRows)
        self.maxCacheBytes = maxCacheBytes ?? GenerationBatcher.defaultCacheBytes
    }

    /// A quarter of the machine's memory, at least 1 GiB.
    static var defaultCacheBytes: Int {
        max(1 << 30, Int(min(ProcessInfo.processInfo.physicalMemory / 4, UInt64(Int.max))))
    }

    /// Steps, sequences and the largest batch so far.
    var stats: BatcherStatistics { lock.withLock { statistics } }

    /// Jobs in the batch (running or waiting for rows).
    var jobCount: Int { lock.withLock { tickets.count } }

    /// Makes the loop wait before its next step once `steps` more have run, until ``releaseSteps()``: tests use
    /// it to make jobs meet in a batch at a known step instead of slowing the loop down and hoping.
    func holdSteps(after steps: Int = 0) {
        let now = lock.withLock { statistics.steps }
        gate.withLock { holdAtStep = now + max(0, steps) }
    }

    func releaseSteps() {
        gate.withLock {
            holdAtStep = nil
            gate.broadcast()
        }
    }

    /// True while the loop waits at the gate.
    var isHeld: Bool { gate.withLock { waitingAtGate } }

    private func passGate() {
        let steps = lock.withLock { statistics.steps }
        gate.withLock {
            while let hold = holdAtStep, steps >= hold {
                waitingAtGate = true
                gate.wait()
            }
            waitingAtGate = false
        }
    }

    /// Runs `sequences` in the shared batch and returns when all have finished or the job stops.
    /// `progress` gets the job's generated-token count after each step (on the loop's thread).
    func run(
        _ sequences: [BatchedSequence], shouldStop: @escaping @Sendable () -> Bool,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> BatchedRun {
        guard !sequences.isEmpty else { return BatchedRun(outputs: [], stopped: false, maxBatchRows: 0) }
        let ticket = BatchTicket(sequences: sequences, shouldStop: shouldStop, progress: progress)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BatchedRun, Error>) in
                ticket.continuation = continuation
                let start: Bool = lock.withLock {
                    tickets.append(ticket)
                    defer { looping = true }
                    return !looping
                }
                if start { startLoop() }
            }
        } onCancel: {
            ticket.cancel()
        }
    }

    private func startLoop() {
        let thread = Thread { [self] in loop() }
        thread.name = "muwa-generate-batch"
        thread.stackSize = 16 << 20
        thread.start()
    }

    // MARK: - The decode loop (its own thread)

    private func loop() {
        let decoder =
            self.decoder
            ?? BatchDecoder(
                model: generator.model, tokenizer: generator.tokenizer,
                maxRows: maxRows)
        self.decoder = decoder
        var owners = [(ticket: BatchTicket, index: Int)?](repeating: nil, count: decoder.maxRows)
        while true {
            passGate()
            // 1. who stops, who joins (under the lock: tickets arrive from other threads)
            let (stopping, joining, done) = lock.withLock { () -> ([BatchTicket], [(BatchTicket, Int)], Bool) in
                var stopping: [BatchTicket] = []
                tickets.removeAll { ticket in
                    guard ticket.wantsToStop else { return false }
                    stopping.append(ticket)
                    return true
                }
                let joining = admissions(decoder, freeing: stopping.reduce(0) { $0 + $1.running })
                if tickets.isEmpty && joining.isEmpty && stopping.isEmpty && !decoder.hasWork {
                    looping = false
                    return ([], [], true)
                }
                return (stopping, joining, false)
            }
            if done { return }
            for ticket in stopping {
                for slot in owners.indices where owners[slot]?.ticket === ticket {
                    if let output = decoder.remove(slot), let index = owners[slot]?.index {
                        ticket.record(index: index, output: output)
                    }
                    owners[slot] = nil
                }
                ticket.finish(stopped: true)
            }
            // 2. prefill the newcomers
            for (ticket, index) in joining where !ticket.isFinished {
                do {
                    let s = ticket.sequences[index]
                    let slot = try decoder.add(
                        DecodeRequest(promptIds: s.promptIds, options: s.options, delta: s.delta))
                    owners[slot] = (ticket, index)
                } catch {
                    fail(ticket, error, decoder: decoder, owners: &owners)
                }
            }
            // 3. one token for every row
            guard decoder.hasWork else { continue }
            let rows = decoder.activeCount
            let events: [DecodeEvent]
            do {
                events = try decoder.step()
            } catch {
                // the pass failed: every job with a row in it fails (the engine refused a state it made itself)
                var failing: [BatchTicket] = []
                for owner in owners {
                    if let t = owner?.ticket, !failing.contains(where: { $0 === t }) { failing.append(t) }
                }
                for ticket in failing { fail(ticket, error, decoder: decoder, owners: &owners) }
                continue
            }
            lock.withLock {
                statistics.steps += 1
                statistics.maxRowsInStep = max(statistics.maxRowsInStep, rows)
            }
            var touched: [BatchTicket] = []
            for event in events {
                guard let (ticket, index) = owners[event.slot] else { continue }
                ticket.maxBatchRows = max(ticket.maxBatchRows, rows)
                if event.token != nil { ticket.tokens += 1 }
                if !touched.contains(where: { $0 === ticket }) { touched.append(ticket) }
                if let output = event.output {
                    owners[event.slot] = nil
                    ticket.record(index: index, output: output)
                    lock.withLock { statistics.sequences += 1 }
                }
            }
            for ticket in touched {
                ticket.progress(ticket.tokens)
                if ticket.isComplete {
                    lock.withLock { tickets.removeAll { $0 === ticket } }
                    ticket.finish(stopped: false)
                }
            }
        }
    }

    /// Sequences to start now (lock held): a free row each, to the job with the fewest rows running, then the
    /// oldest, while the KV cache has room. `freeing`: rows about to be freed by stopping jobs.
    private func admissions(_ decoder: BatchDecoder, freeing: Int) -> [(BatchTicket, Int)] {
        var free = decoder.freeSlots + freeing
        var bytes = decoder.cacheBytes
        var busy = decoder.activeCount - freeing
        var chosen: [(BatchTicket, Int)] = []
        while free > 0 {
            let waiting = tickets.filter { $0.hasPending }
            guard let ticket = waiting.min(by: { $0.running < $1.running }) else { break }
            let index = ticket.nextPending
            let s = ticket.sequences[index]
            let need = decoder.cacheBytes(for: DecodeRequest(promptIds: s.promptIds, options: s.options))
            guard busy == 0 || bytes + need <= maxCacheBytes else { break }
            ticket.nextPending += 1
            ticket.running += 1
            chosen.append((ticket, index))
            free -= 1
            busy += 1
            bytes += need
        }
        return chosen
    }

    /// Ends `ticket` with `error`, taking its rows out of the batch.
    private func fail(
        _ ticket: BatchTicket, _ error: Error, decoder: BatchDecoder,
        owners: inout [(ticket: BatchTicket, index: Int)?]
    ) {
        for slot in owners.indices where owners[slot]?.ticket === ticket {
            decoder.remove(slot)
            owners[slot] = nil
        }
        lock.withLock { tickets.removeAll { $0 === ticket } }
        ticket.fail(error)
    }
}

/// Counters over a batcher's life.
struct BatcherStatistics: Sendable, Equatable {
    var steps = 0
    var sequences = 0
    var maxRowsInStep = 0
}

/// One job's place in the batcher: its sequences, which have started, what the finished ones produced, and
/// the continuation its `run` awaits. The loop's thread owns everything but the cancel flag, which the
/// job's task may set from anywhere.
final class BatchTicket: @unchecked Sendable {
    let sequences: [BatchedSequence]
    let shouldStop: @Sendable () -> Bool
    let progress: @Sendable (Int) -> Void
    let submitted = ContinuousClock.now
    /// Set by `run` before the ticket is queued; resumed once, by `finish` or `fail`.
    var continuation: CheckedContinuation<BatchedRun, Error>?

    // The loop's thread only.
    /// The next sequence to start, rows running, tokens generated, and the largest batch seen.
    var nextPending = 0, running = 0, tokens = 0, maxBatchRows = 0
    private var outputs: [BatchedOutput] = []
    private(set) var isFinished = false

    private let lock = NSLock()
    private var cancelled = false

    init(
        sequences: [BatchedSequence], shouldStop: @escaping @Sendable () -> Bool,
        progress: @escaping @Sendable (Int) -> Void
    ) {
        self.sequences = sequences
        self.shouldStop = shouldStop
        self.progress = progress
    }

    /// The job's task was cancelled: leave at the next step.
    func cancel() {
        lock.withLock { cancelled = true }
    }

    var wantsToStop: Bool {
        lock.withLock { cancelled } || shouldStop()
    }

    var hasPending: Bool { nextPending < sequences.count }
    var isComplete: Bool { !hasPending && running == 0 }

    /// A sequence finished, or was stopped while it ran.
    func record(index: Int, output: GenerationOutput) {
        let elapsed = ContinuousClock.now - submitted
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15
        outputs.append(BatchedOutput(index: index, output: output, milliseconds: (ms * 1000).rounded() / 1000))
        running -= 1
    }

    func finish(stopped: Bool) {
        guard !isFinished else { return }
        isFinished = true
        let run = BatchedRun(
            outputs: outputs.sorted { $0.index < $1.index }, stopped: stopped,
            maxBatchRows: maxBatchRows)
        continuation?.resume(returning: run)
        continuation = nil
    }

    func fail(_ error: Error) {
        guard !isFinished else { return }
        isFinished = true
        continuation?.resume(throwing: error)
        continuation = nil
    }
}
