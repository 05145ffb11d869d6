import Foundation
import Synchronization

/// A validated session id: letters, digits, '_' and '-', as in `sesn_01J...`.
public struct SessionID: Sendable, Hashable, CustomStringConvertible, Codable {
    public let rawValue: String

    public init(_ rawValue: String) throws(FieldError) {
        guard SafeName.allows(rawValue, maxLength: 128) else {
            throw FieldError(
                field: "session_id", message: "'\(rawValue.prefix(80))' is not a session id",
                fix: "use an id such as sesn_01JX... (letters, digits, '_' and '-')")
        }
        self.rawValue = rawValue
    }

    public static func make() -> SessionID {
        try! SessionID(Identifier.make(prefix: "sesn"))
    }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = try SessionID(raw)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The part after the prefix, used inside event ids.
    public var idPart: String {
        guard let underscore = rawValue.firstIndex(of: "_") else { return rawValue }
        let rest = rawValue[rawValue.index(after: underscore)...]
        return rest.isEmpty ? rawValue : String(rest)
    }
}

/// The writer's claim on a session. Only the newest fence may append.
public struct SessionFence: Sendable, Hashable {
    public let session: SessionID
    public let epoch: Int64

    public init(session: SessionID, epoch: Int64) {
        self.session = session
        self.epoch = epoch
    }
}

/// An event as the log holds it.
public struct StoredEvent: Sendable, Equatable, Codable {
    public let session: String
    public let seq: Int64
    /// The type as stored; `kind` is the typed form.
    public let type: String
    /// The wire JSON, with `id` and `processed_at`.
    public let json: String
    /// The typed event, decoded on first use and shared by every copy of this value.
    private let decoded = DecodedEvent()

    private enum CodingKeys: String, CodingKey {
        case session, seq, type, json
    }

    public init(session: String, seq: Int64, type: String, json: String) {
        self.session = session
        self.seq = seq
        self.type = type
        self.json = json
    }

    public static func == (lhs: StoredEvent, rhs: StoredEvent) -> Bool {
        lhs.session == rhs.session && lhs.seq == rhs.seq && lhs.type == rhs.type && lhs.json == rhs.json
    }

    /// The event as a typed value, decoded once. Nil only if the stored JSON is not a valid
    /// event, which the log never writes (every append is checked against the wire types).
    /// The event type. Nil only for a type this version does not know, which the log never
    /// writes (every append names a known type).
    public var kind: SessionEventType? {
        SessionEventType(rawValue: type)
    }

    public var event: SessionEvent? {
        decoded.value(of: json)
    }

    /// The typed payload; nil as for `event`.
    public var payload: SessionEventPayload? {
        event?.payload
    }

    public var id: String {
        Self.field("id", in: json) ?? ""
    }

    public var processedAt: String {
        Self.field("processed_at", in: json) ?? ""
    }

    public var value: JSONValue {
        JSONValue.parseStored(json) ?? .null
    }

    /// The log writes `id` and `processed_at` first, so they can be read without parsing.
    /// Bytes, not characters: the recorder reads both for every event it mirrors.
    private static func field(_ name: StaticString, in json: String) -> String? {
        var json = json
        return json.withUTF8 { bytes in
            name.withUTF8Buffer { key in
                // `"name":"` at `start`, the value up to the next quote.
                let quote = UInt8(ascii: "\"")
                let width = key.count + 4
                guard bytes.count > width else { return nil }
                var start = 0
                while start + width <= bytes.count {
                    if bytes[start] == quote, bytes[start + key.count + 1] == quote, bytes[start + key.count + 2] == UInt8(ascii: ":"),
                        bytes[start + key.count + 3] == quote, zip(key.indices, key).allSatisfy({ bytes[start + 1 + $0] == $1 })
                    {
                        let from = start + width
                        guard let end = bytes[from...].firstIndex(of: quote) else { return nil }
                        return String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<end]), as: UTF8.self)
                    }
                    start += 1
                }
                return nil
            }
        }
    }
}

/// A `StoredEvent`'s decoded form, computed at most once.
private final class DecodedEvent: Sendable {
    private let state = Mutex<SessionEvent??>(nil)

    func value(of json: String) -> SessionEvent? {
        if let known = state.withLock({ $0 }) { return known }
        let event = JSONValue.parseStored(json).flatMap { try? SessionEvent(wire: $0, path: "event") }
        state.withLock { $0 = .some(event) }
        return event
    }
}
