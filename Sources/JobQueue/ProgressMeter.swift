// ProgressMeter: turns an executor's progress reports into what people watching a long job want — an ETA,
// a throughput, and a line in the log at least every 30 s. The ETA extrapolates this attempt's own pace
// (a resumed fine-tune starts at 50% and is judged by how fast it moves from there); tokens per second
// comes from the cumulative token count an executor reports (generated, trained or scored tokens).
//
// progress_detail gains "eta_seconds", "tokens_per_second" and "elapsed_seconds" beside the executor's
// own keys; `muwad status` and dashboards read them from muwa.jobs.
import Foundation
import Storage

/// Pace of one attempt. Not thread-safe: JobContext guards it.
struct ProgressMeter {
    private var start: ContinuousClock.Instant
    private var firstFraction: Double?
    private var fraction: Double = 0
    private var tokens: Int?
    private var lastLine: ContinuousClock.Instant

    init(start: ContinuousClock.Instant) {
        self.start = start
        self.lastLine = start
    }

    mutating func record(fraction: Double, tokens: Int?) {
        if firstFraction == nil { firstFraction = fraction }
        self.fraction = fraction
        if let tokens { self.tokens = tokens }
    }

    func elapsed(at now: ContinuousClock.Instant) -> Double { Self.seconds(now - start) }

    /// Seconds left at this attempt's pace; nil until it has moved.
    func etaSeconds(at now: ContinuousClock.Instant) -> Double? {
        guard let first = firstFraction, fraction > first, fraction < 1 else { return fraction >= 1 ? 0 : nil }
        let elapsed = self.elapsed(at: now)
        guard elapsed > 0 else { return nil }
        return elapsed * (1 - fraction) / (fraction - first)
    }

    func tokensPerSecond(at now: ContinuousClock.Instant) -> Double? {
        let elapsed = self.elapsed(at: now)
        guard let tokens, elapsed > 0 else { return nil }
        return Double(tokens) / elapsed
    }

    /// `detail` (an object, or nothing) with the pace fields added.
    func annotate(_ detail: JSONValue?, at now: ContinuousClock.Instant) -> JSONValue {
        var fields = detail?.objectValue ?? [:]
        if let detail, detail.objectValue == nil { fields["detail"] = detail }
        fields["elapsed_seconds"] = .number((elapsed(at: now) * 10).rounded() / 10)
        if let eta = etaSeconds(at: now) { fields["eta_seconds"] = .number(eta.rounded()) }
        if let rate = tokensPerSecond(at: now) { fields["tokens_per_second"] = .number((rate * 10).rounded() / 10) }
        return .object(fields)
    }

    /// A progress line when `interval` has passed since the last one (and the job has reported anything).
    mutating func line(every interval: Double, detail: JSONValue?, at now: ContinuousClock.Instant) -> String? {
        guard firstFraction != nil, Self.seconds(now - lastLine) >= interval else { return nil }
        lastLine = now
        var parts = [String(format: "progress %.1f%%", fraction * 100)]
        if let object = detail?.objectValue {
            for key in object.keys.sorted() {
                guard let value = object[key] else { continue }
                switch value {
                case .number(let number):
                    parts.append(
                        "\(key) "
                            + (number == number.rounded() && abs(number) < 1e15
                                ? String(Int64(number)) : String(format: "%.4g", number)))
                case .string(let text) where text.count <= 40:
                    parts.append("\(key) \(text)")
                default:
                    continue
                }
            }
        }
        if let rate = tokensPerSecond(at: now) { parts.append(String(format: "%.1f tokens/s", rate)) }
        parts.append("elapsed " + formatSeconds(elapsed(at: now)))
        if let eta = etaSeconds(at: now) { parts.append("ETA " + formatSeconds(eta)) }
        return parts.joined(separator: ", ")
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
