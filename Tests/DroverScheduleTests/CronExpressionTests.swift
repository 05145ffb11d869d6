import DroverSchedule
import Foundation
import Testing

@Suite("Cron expression")
struct CronExpressionTests {
    func utc(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    @Test("errors name the field, the value and the fix")
    func errors() {
        let cases: [(String, String, String)] = [
            ("61 * * * *", "UTC", "minute: 61 is out of range 0–59"),
            ("0 24 * * *", "UTC", "hour: 24 is out of range 0–23"),
            ("0 0 0 * *", "UTC", "day-of-month: 0 is out of range 1–31"),
            ("0 0 * 13 *", "UTC", "month: 13 is out of range 1–12"),
            ("0 0 * * 8", "UTC", "day-of-week: 8 is out of range 0–7"),
            ("0 0 * * funday", "UTC", "day-of-week: 'funday' is not a number or a name"),
            ("0 0 * *", "UTC", "has 4 fields"),
            ("0 0 L * *", "UTC", "extended cron syntax"),
            ("*/0 * * * *", "UTC", "step '0' is not a positive number"),
            ("0 0 30 2 *", "UTC", "never occurs"),
            ("5-1 * * * *", "UTC", "runs backwards"),
            ("0 9 * * *", "Mars/Olympus", "timezone: 'Mars/Olympus' is not an IANA timezone"),
        ]
        for (expression, zone, expected) in cases {
            do {
                _ = try CronExpression(expression, timeZone: zone)
                Issue.record("\(expression) was accepted")
            } catch {
                #expect(error.description.contains(expected), "\(expression): \(error.description)")
                #expect(error.description.contains("Fix:"))
            }
        }
    }

    @Test("names, steps, macros and Sunday as 7")
    func syntax() throws {
        let weekdays = try CronExpression("0 9 * * mon-fri", timeZone: "UTC")
        #expect(weekdays.next(after: utc("2026-11-27T10:00:00Z")) == utc("2026-11-30T09:00:00Z"))  // Fri → Mon
        let sunday = try CronExpression("0 0 * * 7", timeZone: "UTC")
        #expect(sunday.next(after: utc("2026-11-25T00:00:00Z")) == utc("2026-11-29T00:00:00Z"))
        let hourly = try CronExpression("@hourly", timeZone: "UTC")
        #expect(hourly.next(after: utc("2026-11-25T10:00:00Z")) == utc("2026-11-25T11:00:00Z"))
        let stepped = try CronExpression("5/20 * * jan,nov *", timeZone: "UTC")
        #expect(
            stepped.upcoming(after: utc("2026-11-25T10:00:00Z"), count: 3) == [
                utc("2026-11-25T10:05:00Z"), utc("2026-11-25T10:25:00Z"), utc("2026-11-25T10:45:00Z"),
            ])
    }

    @Test("a missed stretch owes only its latest occurrence")
    func latest() throws {
        let everyMinute = try CronExpression("* * * * *", timeZone: "UTC")
        #expect(everyMinute.latest(after: utc("2026-11-20T00:00:30Z"), through: utc("2026-11-25T10:00:30Z")) == utc("2026-11-25T10:00:00Z"))
        let yearly = try CronExpression("0 0 1 1 *", timeZone: "Europe/Berlin")
        #expect(yearly.latest(after: utc("2024-06-01T00:00:00Z"), through: utc("2026-11-25T10:00:00Z")) == utc("2025-12-31T23:00:00Z"))
        #expect(yearly.latest(after: utc("2026-01-01T00:00:00Z"), through: utc("2026-11-25T10:00:00Z")) == nil)
    }

    @Test("DST: a repeated local time fires at both instants, a skipped one once at the end of the gap")
    func daylightSaving() throws {
        // New York: clocks go forward at 2026-03-08 02:00 EST, back at 2026-11-01 02:00 EDT.
        let skipped = try CronExpression("30 2 * * *", timeZone: "America/New_York")
        #expect(
            skipped.upcoming(after: utc("2026-03-07T12:00:00Z"), count: 2) == [
                utc("2026-03-08T07:00:00Z"),  // 03:00 EDT: the end of the gap, once
                utc("2026-03-09T06:30:00Z"),
            ])
        let everyHalfHour = try CronExpression("*/30 * * * *", timeZone: "America/New_York")
        #expect(
            everyHalfHour.upcoming(after: utc("2026-03-08T06:00:00Z"), count: 3) == [
                utc("2026-03-08T06:30:00Z"), utc("2026-03-08T07:00:00Z"), utc("2026-03-08T07:30:00Z"),
            ])
        let repeated = try CronExpression("30 1 * * *", timeZone: "America/New_York")
        #expect(
            repeated.upcoming(after: utc("2026-10-31T16:00:00Z"), count: 3) == [
                utc("2026-11-01T05:30:00Z"),  // 01:30 EDT
                utc("2026-11-01T06:30:00Z"),  // 01:30 EST
                utc("2026-11-02T06:30:00Z"),
            ])
        // Berlin: back at 2026-10-25 03:00 CEST.
        let berlin = try CronExpression("30 2 * * *", timeZone: "Europe/Berlin")
        #expect(
            berlin.upcoming(after: utc("2026-10-24T12:00:00Z"), count: 2) == [
                utc("2026-10-25T00:30:00Z"), utc("2026-10-25T01:30:00Z"),
            ])
    }
}
