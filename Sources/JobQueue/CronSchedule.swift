// CronSchedule: the five-field cron expressions of muwa.schedule(), in UTC.
//
//   minute hour day-of-month month day-of-week      e.g. "0 3 * * *" (03:00 daily), "*/15 * * * 1-5"
//   fields: *  N  N-M  */S  N-M/S  and lists of those (1,15,30); day of week 0–7 (0 and 7 are Sunday)
//   macros: @hourly @daily @midnight @weekly @monthly @yearly @annually
//
// As in Vixie cron, when both day-of-month and day-of-week are restricted a day matches if either does.
// Names (JAN, MON) are not accepted: numbers only, said so in the error.
import Foundation

public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let daysOfMonthRestricted: Bool
    let daysOfWeekRestricted: Bool

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public init(_ expression: String) throws {
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        let macros = [
            "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
        ]
        let text = macros[trimmed.lowercased()] ?? trimmed
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(
                description:
                    "cron \"\(expression)\" has \(fields.count) fields; expected 5 (minute hour day month weekday) or a macro such as @daily"
            )
        }
        func field(_ index: Int, _ name: String, _ range: ClosedRange<Int>) throws -> Set<Int> {
            try Self.parseField(fields[index], name: name, range: range, expression: expression)
        }
        minutes = try field(0, "minute", 0...59)
        hours = try field(1, "hour", 0...23)
        daysOfMonth = try field(2, "day of month", 1...31)
        months = try field(3, "month", 1...12)
        daysOfWeek = Set(try field(4, "day of week", 0...7).map { $0 % 7 })
        daysOfMonthRestricted = fields[2] != "*"
        daysOfWeekRestricted = fields[4] != "*"
        description = trimmed
    }

    static func parseField(_ text: String, name: String, range: ClosedRange<Int>, expression: String) throws -> Set<Int>
    {
        func bad(_ why: String) -> ParseError {
            ParseError(description: "cron \"\(expression)\": \(name) \"\(text)\" \(why)")
        }
        var values = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw bad("has more than one /") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s >= 1, s <= range.upperBound else { throw bad("has a bad step") }
                step = s
            }
            let base = pieces[0]
            var low = range.lowerBound, high = range.upperBound
            if base != "*" {
                let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
                guard (1...2).contains(bounds.count), let first = Int(bounds[0]),
                    let last = bounds.count == 2 ? Int(bounds[1]) : first
                else { throw bad("is not a number, a range or * (names like MON are not accepted)") }
                guard range.contains(first), range.contains(last), first <= last else {
                    throw bad("is outside \(range.lowerBound)–\(range.upperBound)")
                }
                low = first
                high = pieces.count == 2 && bounds.count == 1 ? range.upperBound : last
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    /// Whether `day` (1…31) of `month` with weekday `weekday` (0 = Sunday) matches.
    func dayMatches(day: Int, weekday: Int) -> Bool {
        let byMonth = daysOfMonth.contains(day), byWeek = daysOfWeek.contains(weekday)
        if daysOfMonthRestricted && daysOfWeekRestricted { return byMonth || byWeek }
        return byMonth && byWeek
    }

    /// The first matching minute strictly after `date` (UTC), or nil when none comes within 5 years
    /// ("0 0 30 2 *" never does).
    public func next(after date: Date) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        var current = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        let limit = date.addingTimeInterval(5 * 366 * 86_400)
        while current < limit {
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: current)
            guard let month = parts.month, let day = parts.day, let hour = parts.hour, let minute = parts.minute,
                let weekday = parts.weekday
            else { return nil }
            if !months.contains(month) {  // to the first day of the next month
                guard let next = calendar.date(byAdding: .month, value: 1, to: current),
                    let first = calendar.date(from: calendar.dateComponents([.year, .month], from: next))
                else { return nil }
                current = first
            } else if !dayMatches(day: day, weekday: weekday - 1) {
                guard let next = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: current)) else {
                    return nil
                }
                current = next
            } else if !hours.contains(hour) {
                current = current.addingTimeInterval(Double(60 - minute) * 60)
            } else if !minutes.contains(minute) {
                current = current.addingTimeInterval(60)
            } else {
                return current
            }
        }
        return nil
    }
}
