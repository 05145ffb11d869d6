import DroverCore
import Foundation
import Testing

@Suite("UTC timestamps")
struct UTCTimestampTests {
    private static func formatter(fraction: Bool) -> ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = fraction ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return formatter
    }

    @Test("formats as ISO8601DateFormatter does, across leap days, centuries and the epoch")
    func formatsLikeTheFormatter() {
        let milliseconds = Self.formatter(fraction: true)
        let seconds = Self.formatter(fraction: false)
        var generator = SystemRandomNumberGenerator()
        var instants: [TimeInterval] = [0, 951_782_400, 951_868_799.999, 4_107_542_400, 1_709_164_800.5, 1_798_761_599.001]
        for _ in 0..<2000 { instants.append(Double(Int64.random(in: 0..<4_102_444_800_000, using: &generator)) / 1000) }
        for instant in instants {
            // 0.4 ms past the millisecond: clear of where binary fractions make the cut ambiguous.
            let date = Date(timeIntervalSince1970: instant + 0.0004)
            #expect(UTCTimestamp.format(date, fractionDigits: 3) == milliseconds.string(from: date), "\(instant)")
            #expect(UTCTimestamp.format(date, fractionDigits: 0) == seconds.string(from: date), "\(instant)")
        }
    }

    @Test("reads what the log writes, to the microsecond, and what it formats")
    func readsTheLogsForm() throws {
        let date = try #require(UTCTimestamp.parse("2026-11-25T10:38:05.486888Z"))
        #expect(abs(date.timeIntervalSince1970 - 1_795_603_085.486888) < 1e-6)
        #expect(UTCTimestamp.parse("2024-02-29T23:59:59Z")?.timeIntervalSince1970 == 1_709_251_199)
        #expect(UTCTimestamp.parse("1970-01-01T00:00:00.5Z")?.timeIntervalSince1970 == 0.5)
        let formatter = Self.formatter(fraction: false)
        for instant in stride(from: 0.0, to: 4_102_444_800, by: 7_654_321.0) {
            let date = Date(timeIntervalSince1970: instant)
            #expect(UTCTimestamp.parse(UTCTimestamp.format(date, fractionDigits: 0)) == date)
            #expect(UTCTimestamp.parse(formatter.string(from: date)) == formatter.date(from: formatter.string(from: date)))
        }
    }

    @Test("anything else is not a timestamp it reads: offsets, impossible dates, odd bytes")
    func refusesTheRest() {
        for text in [
            "", "2026-11-25", "2026-11-25T10:38:05+01:00", "2026-11-25T10:38:05.Z", "2026-11-25T10:38:05.1234567890Z",
            "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-25T24:00:00Z",
            "2026-11-25T10:60:00Z", "2026-11-25 10:38:05Z", "2026-11-25T10:38:0xZ", "２０２６-11-25T10:38:05Z", "2026-11-25T10:38:05.48é8Z",
        ] {
            #expect(UTCTimestamp.parse(text) == nil, "\(text)")
        }
    }
}
