import Foundation

/// Any JSON document, kept losslessly enough to round-trip what clients send.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value.rounded() == value, abs(value) < 9.007_199_254_740_992e15 {
                try container.encode(Int64(value))
            } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses `text` as one JSON document, or throws a `JSONParseError` that says where it broke.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        if let value = JSONValueParser.parse(text) { return value }
        // Refused: Foundation's parsers say where it broke (and read what the fast one leaves
        // to them, such as a byte-order mark).
        try validate(text)
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            throw JSONParseError(reason: "\(error)")
        }
    }

    /// Parses JSON that Drover itself wrote and checked on the way in (a stored event): one pass,
    /// without the strict check `parse` runs first for the sake of its error messages.
    public static func parseStored(_ text: String) -> JSONValue? {
        JSONValueParser.parse(text) ?? (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)))
    }

    /// Checks that `text` is one JSON document without building it.
    public static func validate(_ text: String) throws(JSONParseError) {
        if text.allSatisfy(\.isWhitespace) { throw JSONParseError(reason: "it is empty") }
        do {
            _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw JSONParseError(reason: detail ?? "it does not parse")
        }
    }
}

public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { "not valid JSON: \(reason.hasSuffix(".") ? String(reason.dropLast()) : reason)" }
}

extension JSONValue {
    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number as an Int, or nil when it is not a whole number an Int can hold: `Int(_:)` on
    /// a Double traps on NaN, infinities and anything past Int.max, and these come from peers.
    public var intValue: Int? {
        if case .number(let value) = self { return Int(exactly: value) }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// Stored JSON read back; `.null` when the text does not parse.
    public static func decode(_ text: String) -> JSONValue {
        parseStored(text) ?? .null
    }
}

extension JSONValue {
    /// One line of JSON with sorted keys and unescaped slashes: stable across runs, for storage,
    /// the wire and comparisons.
    public var compactJSON: String {
        JSONValueWriter.write(self) ?? "null"
    }

    /// The compact JSON as bytes, for a request body; throws, as JSONEncoder does, for a number
    /// JSON cannot hold (not finite).
    public func jsonBytes() throws -> [UInt8] {
        guard let bytes = JSONValueWriter.bytes(self) else {
            throw EncodingError.invalidValue(self, EncodingError.Context(codingPath: [], debugDescription: "a number that is not finite"))
        }
        return bytes
    }
}
