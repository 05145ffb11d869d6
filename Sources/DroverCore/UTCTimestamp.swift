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
        let scale = Int(pow(10, Double(digits)))
        let scaled = Int((date.timeIntervalSince1970 * Double(scale)).rounded(.down))
        let seconds = Civil.floorDiv(scaled, scale)
        let fraction = scaled - seconds * scale
        let days = Civil.floorDiv(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = Civil.date(fromDays: days)
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
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let digit = Int(bytes[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), day >= 1, day <= Civil.daysIn(year: year, month: month), hour < 24, minute < 60, second < 60
        else { return nil }
        var fraction = 0.0
        if count > 20 {
            // A dot and 1 to 9 digits before the Z.
            guard bytes[19] == UInt8(ascii: "."), count - 21 >= 1, count - 21 <= 9, let digits = number(20..<(count - 1)) else { return nil }
            fraction = Double(digits) / pow(10, Double(count - 21))
        }
        let seconds = Civil.days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    private static func append(_ value: Int, width: Int, to text: inout String) {
        let digits = String(value)
        if digits.count < width { text += String(repeating: "0", count: width - digits.count) }
        text += digits
    }
}
