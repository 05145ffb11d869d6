/// An event a client sends to `POST /v1/sessions/{id}/events` (`BetaManagedAgentsEventParams`):
/// the payload without `id` and `processed_at`, which the server assigns.
public struct IncomingSessionEvent: Sendable, Hashable {
    public var payload: SessionEventPayload
    public var type: SessionEventType { payload.type }

    public init(payload: SessionEventPayload) {
        self.payload = payload
    }

    /// Validates one client event; errors name the field under `path` and say what to send.
    public init(clientJSON value: JSONValue, path: String = "event") throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "an event object such as {\"type\": \"user.message\", \"content\": [...]}")
        let type = try reader.required("type", Self.typeField)
        for key in ["id", "processed_at"] + Self.serverOnlyFields(type) where reader.object[key] != nil {
            throw WireDecodingError(path: reader.path(key), message: "is set by the server; leave it out")
        }
        payload = try SessionEventPayload.read(type, from: &reader)
        if let unknown = reader.extras.unknownFields.keys.sorted().first {
            let accepted = reader.consumed.subtracting(Self.serverOnlyFields(type)).sorted().joined(separator: ", ")
            throw WireDecodingError(path: reader.path(unknown), message: "unknown field for \(type.rawValue); it accepts \(accepted)")
        }
        try checkContent(path: path)
        if case .userToolConfirmation(let confirmation) = payload, confirmation.result == .allow, confirmation.denyMessage != nil {
            throw WireDecodingError(
                path: reader.path("deny_message"), message: "only allowed when result is \"deny\"; remove it or set result to \"deny\"")
        }
    }

    /// Decodes a request body, `{"events": [...]}`; paths read `events[0].content`.
    public static func decodeBatch(_ body: JSONValue) throws(WireDecodingError) -> [IncomingSessionEvent] {
        var reader = try WireReader(body, path: "", expected: "an object such as {\"events\": [{\"type\": \"user.message\", ...}]}")
        let items = try reader.required("events", .array(of: WireField<JSONValue>(expected: "an event") { value, _ in value }, "an array of events"))
        guard !items.isEmpty else { throw WireDecodingError(path: "events", message: "is empty; send at least one event") }
        var events: [IncomingSessionEvent] = []
        for (index, item) in items.enumerated() {
            events.append(try IncomingSessionEvent(clientJSON: item, path: WirePath.index("events", index)))
        }
        return events
    }

    /// The event as the log stores it, once the server has given it an id.
    public func stamped(id: String, processedAt: String?) -> SessionEvent {
        SessionEvent(id: id, processedAt: processedAt, payload: payload)
    }

    public static var acceptedTypes: [SessionEventType] {
        SessionEventType.allCases.filter(\.isClientSendable)
    }

    private static var typeField: WireField<SessionEventType> {
        let accepted = acceptedTypes.map(\.rawValue).joined(separator: ", ")
        return WireField(expected: "an event type, one of \(accepted)") { value, path throws(WireDecodingError) in
            guard case .string(let raw) = value else { throw .init(path: path, expected: "an event type, one of \(accepted)", got: value) }
            guard let type = SessionEventType(rawValue: raw) else {
                throw .init(path: path, message: "\"\(raw)\" is not an event type; send one of \(accepted)")
            }
            guard type.isClientSendable else {
                throw .init(path: path, message: "\"\(raw)\" is written by the server, not sent by clients; send one of \(accepted)")
            }
            return type
        }
    }

    private static func serverOnlyFields(_ type: SessionEventType) -> [String] {
        switch type {
        case .userToolConfirmation, .userCustomToolResult, .userToolResult: ["session_thread_id"]
        default: []
        }
    }

    /// The SDK's params allow fewer block types per event than events may carry.
    private func checkContent(path: String) throws(WireDecodingError) {
        let blocks: [ContentBlock]
        let allowed: [String]
        switch payload {
        case .userMessage(let message):
            blocks = message.content
            allowed = ["text", "image", "document", "redacted"]
        case .userCustomToolResult(let result):
            blocks = result.content ?? []
            allowed = ["text", "image", "document", "search_result"]
        case .userToolResult(let result):
            blocks = result.content ?? []
            allowed = ["text", "image", "document", "search_result"]
        default:
            return
        }
        for (index, block) in blocks.enumerated() where !allowed.contains(block.type) {
            throw WireDecodingError(
                path: WirePath.field(WirePath.index(WirePath.field(path, "content"), index), "type"),
                message: "\"\(block.type)\" is not allowed in \(type.rawValue); use one of \(allowed.joined(separator: ", "))")
        }
    }
}
