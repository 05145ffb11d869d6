/// One event of a session's log as the API returns it: `id`, `type`, `processed_at` and the
/// type's fields. Encodes back to the JSON it was decoded from (same fields, same `null`s).
public struct SessionEvent: WireCodable {
    public var id: String
    /// As on the wire, e.g. `2026-04-01T12:00:00.123000Z`; kept as text so it re-encodes
    /// byte for byte. `nil` for user events not processed yet.
    public var processedAt: String?
    public var payload: SessionEventPayload
    /// Fields of the event object this version does not know, and optional fields that came
    /// as `null`.
    public var extras: WireExtras

    public var type: SessionEventType { payload.type }

    public init(id: String, processedAt: String?, payload: SessionEventPayload, extras: WireExtras = WireExtras()) {
        self.id = id
        self.processedAt = processedAt
        self.payload = payload
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "an event object")
        let type = try reader.required("type", Self.typeField)
        id = try reader.required("id", .string)
        processedAt = try reader.optional("processed_at", .string)
        payload = try SessionEventPayload.read(type, from: &reader)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("id", id)
        writer.set("type", type.rawValue)
        writer.set("processed_at", processedAt)
        payload.write(to: &writer)
        return writer.value
    }

    static var typeField: WireField<SessionEventType> {
        WireField(expected: "an event type such as \"user.message\"") { value, path throws(WireDecodingError) in
            guard case .string(let raw) = value else {
                throw .init(path: path, expected: "an event type string such as \"user.message\"", got: value)
            }
            guard let type = SessionEventType(rawValue: raw) else {
                throw .init(path: path, message: "\"\(raw)\" is not a session event type")
            }
            return type
        }
    }
}
