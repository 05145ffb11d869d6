import Foundation

/// A filter on `created_at`: instants, each bound inclusive (`gte`, `lte`) or not (`gt`, `lt`).
/// Rows store `created_at` as UTC text with milliseconds, which sorts as time does; a bound is
/// written in that form, rounded the way that keeps its meaning (a `gte` of 12.3456 s starts at
/// 12.346), so `+05:30` and `Z` bounds compare as the instants they are.
public struct CreatedAtRange: Sendable, Equatable {
    public var after: Date?
    public var afterInclusive = true
    public var before: Date?
    public var beforeInclusive = true

    public init(after: Date? = nil, afterInclusive: Bool = true, before: Date? = nil, beforeInclusive: Bool = true) {
        self.after = after
        self.afterInclusive = afterInclusive
        self.before = before
        self.beforeInclusive = beforeInclusive
    }

    /// `created_at` conditions and their arguments, in the stored text form.
    var conditions: [(sql: String, argument: String)] {
        var out: [(String, String)] = []
        if let after {
            // gt: anything stored after the bound's millisecond; gte: from the first millisecond not before it.
            out.append(
                afterInclusive ? ("created_at >= ?", Self.text(after, roundingUp: true)) : ("created_at > ?", Self.text(after, roundingUp: false)))
        }
        if let before {
            out.append(
                beforeInclusive ? ("created_at <= ?", Self.text(before, roundingUp: false)) : ("created_at < ?", Self.text(before, roundingUp: true)))
        }
        return out
    }

    /// The instant at whole milliseconds, as `ControlPlaneStore.timestamp` writes it.
    static func text(_ date: Date, roundingUp: Bool) -> String {
        // Through microseconds first: 12.345 is 12.3449999… as a double.
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        let millis = roundingUp ? (micros / 1000).rounded(.up) : (micros / 1000).rounded(.down)
        return ControlPlaneStore.timestamp(Date(timeIntervalSince1970: millis / 1000))
    }

    /// Whether `date` is inside the range.
    public func contains(_ date: Date) -> Bool {
        if let after, afterInclusive ? date < after : date <= after { return false }
        if let before, beforeInclusive ? date > before : date >= before { return false }
        return true
    }

    /// An RFC 3339 instant with any offset (`Z`, `+05:30`), with or without fractional seconds,
    /// to the microsecond (Foundation's parser keeps only milliseconds).
    public static func instant(_ text: String) -> Date? {
        guard let match = text.wholeMatch(of: /(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})/) else { return nil }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        guard let whole = plain.date(from: String(match.output.1 + match.output.3)) else { return nil }
        let fraction = match.output.2.flatMap { Double("0" + $0) } ?? 0
        return whole + fraction
    }
}
