import DroverCore
import Foundation

/// A 5-field POSIX cron expression (minute hour day-of-month month day-of-week) evaluated in an
/// IANA timezone.
///
/// - Lists, ranges, steps (`*/15`, `5/15`, `1-30/2`), and the names `jan`–`dec`, `sun`–`sat`.
///   Day-of-week 0 and 7 are both Sunday. The macros `@yearly`, `@annually`, `@monthly`,
///   `@weekly`, `@daily`, `@midnight` and `@hourly` are accepted too.
/// - When both day-of-month and day-of-week are restricted, a day matches if *either* does
///   (POSIX OR semantics); otherwise both must.
/// - Daylight-saving time, matching Python's `croniter` (the oracle of the tests):
///   - a local time that occurs twice (the autumn fall-back) fires at **both** instants;
///   - a local time that does not exist (the spring gap) fires once, at the first instant
///     after the gap (02:30 on a New York spring-forward day fires at 03:00 EDT) when the hour
///     field is restricted; when the hour field is `*`, the skipped times are simply not there
///     (the cron fires again at its next time that exists). Nothing fires twice for one gap.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    public let expression: String
    public let timeZone: TimeZone
    let minute, hour, dayOfMonth, month, dayOfWeek: CronField

    public var description: String { "\(expression) (\(timeZone.identifier))" }

    static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    public init(_ expression: String, timeZone identifier: String = "UTC") throws(FieldError) {
        guard let zone = TimeZone(identifier: identifier), !identifier.isEmpty else {
            throw FieldError(
                field: "timezone", message: "'\(identifier)' is not an IANA timezone",
                fix: "use a name from the IANA database, e.g. UTC, America/New_York or Europe/Berlin")
        }
        try self.init(expression, timeZone: zone)
    }

    public init(_ expression: String, timeZone: TimeZone) throws(FieldError) {
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        var text = trimmed
        if trimmed.hasPrefix("@") {
            guard let expanded = Self.macros[trimmed.lowercased()] else {
                throw FieldError(
                    field: "expression", message: "'\(trimmed)' is not a known macro",
                    fix: "use one of \(Self.macros.keys.sorted().joined(separator: ", ")) or 5 fields")
            }
            text = expanded
        }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 else {
            throw FieldError(
                field: "expression",
                message: "'\(trimmed)' has \(parts.count) fields; a POSIX cron has 5 (minute hour day-of-month month day-of-week)",
                fix: "write 5 fields, e.g. '0 9 * * 1-5' for weekdays at 09:00 (no seconds or year field)")
        }
        self.expression = trimmed
        self.timeZone = timeZone
        minute = try CronField(parts[0], kind: .minute)
        hour = try CronField(parts[1], kind: .hour)
        dayOfMonth = try CronField(parts[2], kind: .dayOfMonth)
        month = try CronField(parts[3], kind: .month)
        dayOfWeek = try CronField(parts[4], kind: .dayOfWeek)
        if dayOfWeek.isUnrestricted || dayOfMonth.isUnrestricted {
            // With AND semantics, day-of-month alone can rule out every date (31 in February).
            let longest = (1...12).filter(month.contains).map { Civil.daysIn(year: 2000, month: $0) }.max() ?? 0
            guard (1...longest).contains(where: dayOfMonth.contains) else {
                throw FieldError(
                    field: "day-of-month", message: "'\(parts[2])' never occurs in month(s) '\(parts[3])'",
                    fix: "pick days that exist in those months")
            }
        }
    }

    // MARK: Evaluation

    /// The first fire instant strictly after `date`, or nil if there is none within 30 years.
    public func next(after date: Date) -> Date? {
        let t = date.timeIntervalSince1970
        let seconds = Int(t.rounded(.down))
        let offset = timeZone.secondsFromGMT(for: date)
        let naiveNow = Civil.floorDiv(seconds + offset, 60)
        // Near a transition an instant after `date` can have an earlier local time (the repeated
        // hour), so start that far back in local time and keep the earliest instant after.
        let shift = abs(timeZone.secondsFromGMT(for: date - 86_400) - timeZone.secondsFromGMT(for: date + 86_400))
        var naive = shift > 0 ? naiveNow - shift / 60 - 1 : naiveNow + 1
        var best: Int?
        var bestNaive = 0
        while let match = nextNaiveMatch(atOrAfter: naive) {
            if best != nil, match > bestNaive + 360 { break }
            for instant in instants(ofNaiveMinute: match) where Double(instant) > t {
                if best == nil || instant < best! {
                    best = instant
                    bestNaive = match
                }
            }
            if best == nil, match > naiveNow + 60 * 24 * 366 * 30 { return nil }
            naive = match + 1
        }
        return best.map { Date(timeIntervalSince1970: Double($0)) }
    }

    /// The next `count` fire instants after `date`.
    public func upcoming(after date: Date, count: Int) -> [Date] {
        var result: [Date] = []
        var cursor = date
        while result.count < count, let next = next(after: cursor) {
            result.append(next)
            cursor = next
        }
        return result
    }

    /// The latest fire instant in `(since, now]`, if any: what a scheduler that was down owes.
    public func latest(after since: Date, through now: Date) -> Date? {
        guard since < now else { return nil }
        // Look back in growing windows, so a dense cron after a long outage stays cheap.
        var windowEnd = now
        var span: TimeInterval = 3600
        while windowEnd > since {
            let windowStart = max(since, windowEnd - span)
            var cursor = windowStart
            var last: Date?
            while let next = next(after: cursor), next <= windowEnd {
                last = next
                cursor = next
            }
            if let last { return last }
            windowEnd = windowStart
            span *= 4
        }
        return nil
    }

    /// The fire instants of local (naive) minute `n`: none if the time does not exist, two if
    /// it exists twice. A missing time fires at the end of the gap when the hour is restricted.
    private func instants(ofNaiveMinute n: Int) -> [Int] {
        let existing = existingInstants(ofNaiveMinute: n)
        if !existing.isEmpty { return existing }
        guard !hour.isUnrestricted else { return [] }
        var later = n + 1
        while later < n + 24 * 60 {
            if let first = existingInstants(ofNaiveMinute: later).first { return [first] }
            later += 1
        }
        return []
    }

    private func existingInstants(ofNaiveMinute n: Int) -> [Int] {
        let naiveSeconds = n * 60
        let guess = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(naiveSeconds)))
        let before = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(naiveSeconds - guess - 6 * 3600)))
        let after = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(naiveSeconds - guess + 6 * 3600)))
        var result: [Int] = []
        for offset in Set([before, after, guess]) {
            let instant = naiveSeconds - offset
            if timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))) == offset, !result.contains(instant) {
                result.append(instant)
            }
        }
        return result.sorted()
    }

    /// The first local minute at or after naive minute `start` whose fields match.
    func nextNaiveMatch(atOrAfter start: Int) -> Int? {
        let dayNumber = Civil.floorDiv(start, 1440)
        var (year, mon, day) = Civil.date(fromDays: dayNumber)
        var h = (start - dayNumber * 1440) / 60
        var m = start - dayNumber * 1440 - h * 60
        let limit = year + 30
        while year <= limit {
            guard let nextMonth = month.next(atOrAfter: mon), nextMonth <= 12 else {
                year += 1
                mon = 1
                day = 1
                h = 0
                m = 0
                continue
            }
            if nextMonth != mon {
                mon = nextMonth
                day = 1
                h = 0
                m = 0
            }
            let length = Civil.daysIn(year: year, month: mon)
            while day <= length, !dayMatches(year: year, month: mon, day: day) {
                day += 1
                h = 0
                m = 0
            }
            guard day <= length else {
                mon += 1
                day = 1
                h = 0
                m = 0
                if mon > 12 {
                    year += 1
                    mon = 1
                }
                continue
            }
            guard let nextHour = hour.next(atOrAfter: h), nextHour <= 23 else {
                day += 1
                h = 0
                m = 0
                continue
            }
            if nextHour != h {
                h = nextHour
                m = 0
            }
            guard let nextMinute = minute.next(atOrAfter: m), nextMinute <= 59 else {
                h += 1
                m = 0
                continue
            }
            return Civil.days(year: year, month: mon, day: day) * 1440 + h * 60 + nextMinute
        }
        return nil
    }

    private func dayMatches(year: Int, month: Int, day: Int) -> Bool {
        let weekday = Civil.weekday(ofDays: Civil.days(year: year, month: month, day: day))
        let byDay = dayOfMonth.contains(day)
        let byWeekday = dayOfWeek.contains(weekday)
        if !dayOfMonth.isUnrestricted && !dayOfWeek.isUnrestricted { return byDay || byWeekday }
        return byDay && byWeekday
    }
}
