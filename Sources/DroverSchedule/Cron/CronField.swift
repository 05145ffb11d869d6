import DroverCore

/// One of the five fields of a POSIX cron expression, parsed into the set of values it allows.
struct CronField: Sendable, Hashable {
    enum Kind: Int, Sendable, CaseIterable {
        case minute, hour, dayOfMonth, month, dayOfWeek

        var name: String {
            switch self {
            case .minute: "minute"
            case .hour: "hour"
            case .dayOfMonth: "day-of-month"
            case .month: "month"
            case .dayOfWeek: "day-of-week"
            }
        }

        /// The values the field accepts as written; day-of-week accepts 7 as Sunday.
        var range: ClosedRange<Int> {
            switch self {
            case .minute: 0...59
            case .hour: 0...23
            case .dayOfMonth: 1...31
            case .month: 1...12
            case .dayOfWeek: 0...7
            }
        }

        var names: [String: Int] {
            switch self {
            case .month:
                [
                    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
                    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
                ]
            case .dayOfWeek:
                ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]
            default: [:]
            }
        }

        var example: String {
            switch self {
            case .minute: "0-59, e.g. 0,30 or */15"
            case .hour: "0-23, e.g. 9 or 9-17"
            case .dayOfMonth: "1-31, e.g. 1,15"
            case .month: "1-12 or jan-dec, e.g. 1-6 or jan,jul"
            case .dayOfWeek: "0-7 or sun-sat (0 and 7 are Sunday), e.g. mon-fri"
            }
        }
    }

    let kind: Kind
    /// Bit `v` is set when value `v` is allowed (day-of-week folded to 0-6).
    let bits: UInt64

    func contains(_ value: Int) -> Bool { bits & (1 << UInt64(value)) != 0 }

    /// Whether the field allows every value, which matters for day-of-month/day-of-week OR
    /// semantics and for the DST rule (as in croniter, `*/1` and `0-23` count as `*`).
    var isUnrestricted: Bool { bits == Self.fullBits(kind) }

    /// The smallest allowed value at or above `value`, if any.
    func next(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let masked = bits >> UInt64(max(0, value))
        guard masked != 0 else { return nil }
        return max(0, value) + masked.trailingZeroBitCount
    }

    static func fullBits(_ kind: Kind) -> UInt64 {
        let range = kind == .dayOfWeek ? 0...6 : kind.range
        var bits: UInt64 = 0
        for value in range { bits |= 1 << UInt64(value) }
        return bits
    }

    init(_ text: String, kind: Kind) throws(FieldError) {
        self.kind = kind
        var bits: UInt64 = 0
        let field = kind.name
        guard !text.isEmpty else {
            throw FieldError(field: field, message: "is empty", fix: "give \(kind.example)")
        }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else {
                throw FieldError(field: field, message: "'\(text)' has an empty list item", fix: "remove the extra comma")
            }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else {
                throw FieldError(field: field, message: "'\(part)' has more than one '/'", fix: "write a step once, e.g. */15")
            }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value > 0 else {
                    throw FieldError(field: field, message: "step '\(pieces[1])' is not a positive number", fix: "write a step such as */5")
                }
                guard value <= kind.range.upperBound else {
                    throw FieldError(
                        field: field, message: "step \(value) is larger than the field's range \(kind.range.lowerBound)–\(kind.range.upperBound)",
                        fix: "use a step of at most \(kind.range.upperBound)")
                }
                step = value
            }
            let base = pieces[0]
            var low: Int
            var high: Int
            if base == "*" {
                low = kind.range.lowerBound
                high = kind == .dayOfWeek ? 6 : kind.range.upperBound
            } else {
                let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2 else {
                    throw FieldError(
                        field: field, message: "'\(base)' is not a value or a range", fix: "write a range as low-high, e.g. \(kind.example)")
                }
                low = try Self.value(bounds[0], kind: kind)
                if bounds.count == 2 {
                    high = try Self.value(bounds[1], kind: kind)
                    guard low <= high else {
                        throw FieldError(
                            field: field, message: "range \(base) runs backwards",
                            fix: "write the smaller value first, or split it into two ranges joined by a comma")
                    }
                } else {
                    // "5/15" means from 5 to the end of the range, every 15.
                    high = pieces.count == 2 ? (kind == .dayOfWeek ? 6 : kind.range.upperBound) : low
                }
            }
            var value = low
            while value <= high {
                let folded = kind == .dayOfWeek && value == 7 ? 0 : value
                bits |= 1 << UInt64(folded)
                value += step
            }
        }
        self.bits = bits
    }

    private static func value(_ text: Substring, kind: Kind) throws(FieldError) -> Int {
        if let number = Int(text) {
            guard kind.range.contains(number) else {
                throw FieldError(
                    field: kind.name, message: "\(number) is out of range \(kind.range.lowerBound)–\(kind.range.upperBound)",
                    fix: "use \(kind.example)")
            }
            return number
        }
        if let named = kind.names[text.lowercased()] { return named }
        if text.isEmpty {
            throw FieldError(field: kind.name, message: "a range is missing a value", fix: "write a range as low-high, e.g. \(kind.example)")
        }
        if "LW#?".contains(where: { text.contains($0) }) {
            throw FieldError(
                field: kind.name, message: "'\(text)' uses extended cron syntax (L, W, # or ?), which is not supported",
                fix: "use plain POSIX values: \(kind.example)")
        }
        throw FieldError(field: kind.name, message: "'\(text)' is not a number or a name", fix: "use \(kind.example)")
    }
}
