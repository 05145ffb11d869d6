import Foundation

/// RFC 3339 instants in UTC, in the one form Drover writes (`2026-11-25T10:38:05.486888Z`),
/// formatted and read by arithmetic. ISO8601DateFormatter goes through ICU and cost more than
/// the SQLite insert it stamped: the recorder reads one per status event, a batch stamps each
/// item's every step.
public enum UTCTimestamp {
    /// `date` as `YYYY-MM-DDTHH:MM:SS.fffZ`, with `fractionDigits` digits of the second (0 to 9;
    /// 0 drops the dot), cut off as ISO8601DateFormatter does.
    public static func format(_ date: Date, fractionDigits: Int = 3) -> String {
        let digits = min(max(fractionDigits, 0), 9)
        // Scaled first, then floored: the product's own rounding lands x.999 (stored as
        // x.99899...) on 999, as ICU's millisecond clock does.
        let scale = Int64(pow(10, Double(digits)))
        let scaled = Int64((date.timeIntervalSince1970 * Double(scale)).rounded(.down))
        let seconds = floorDivide(scaled, scale)
        let fraction = scaled - seconds * scale
        let days = floorDivide(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        var text = ""
        text.reserveCapacity(20 + digits + 1)
        append(year, width: 4, to: &text)
        text += "-"
        append(month, width: 2, to: &text)
        text += "-"
        append(day, width: 2, to: &text)
        text += "T"
        append(secondOfDay / 3600, width: 2, to: &text)
        text += ":"
        append(secondOfDay % 3600 / 60, width: 2, to: &text)
        text += ":"
        append(secondOfDay % 60, width: 2, to: &text)
        if digits > 0 {
            text += "."
            append(fraction, width: digits, to: &text)
        }
        text += "Z"
        return text
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction]Z`. Nil for anything else (an offset, a date that
    /// does not exist, a stray byte): callers that accept more fall back to a formatter.
    public static func parse(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    private static func parse(bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        let count = bytes.count
        guard count >= 20, bytes[count - 1] == UInt8(ascii: "Z"), bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let digit = Int64(bytes[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60, second < 60
        else { return nil }
        var fraction = 0.0
        if count > 20 {
            // A dot and 1 to 9 digits before the Z.
            guard bytes[19] == UInt8(ascii: "."), count - 21 >= 1, count - 21 <= 9, let digits = number(20..<(count - 1)) else { return nil }
            fraction = Double(digits) / pow(10, Double(count - 21))
        }
        let seconds = days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    private static func append(_ value: Int64, width: Int, to text: inout String) {
        let digits = String(value)
        if digits.count < width { text += String(repeating: "0", count: width - digits.count) }
        text += digits
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : (a - b + 1) / b
    }

    private static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Days from 1970-01-01 in the proleptic Gregorian calendar, and back (the era-based
    // algorithms of Howard Hinnant's "chrono-compatible low-level date algorithms").
    private static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
