/// What the brain publishes while a model response streams, for the API's message previews
/// (`event_deltas`). Best effort: the log's `agent.message` is the truth.
public enum MessageDelta: Sendable, Equatable {
    /// More text for the content block at `index` of the message that will be the event
    /// `eventId` (the id its `agent.message` gets when appended, if nothing else is appended first).
    case text(index: Int, text: String, eventId: String? = nil)
    /// The model request is being retried: the text so far is void.
    case reset

    /// One line of JSON, as published.
    public var json: String {
        switch self {
        case .text(let index, let text, let eventId):
            JSONValue.object(
                ["type": "content_delta", "index": .number(Double(index)), "text": .string(text), "event_id": eventId.map(JSONValue.string) ?? .null]
            ).compactJSON
        case .reset:
            #"{"type":"reset"}"#
        }
    }

    /// Nil for a message this version does not know.
    public init?(json: String) {
        guard let fields = (try? JSONValue.parse(json))?.objectValue else { return nil }
        switch fields["type"]?.stringValue {
        case "content_delta":
            guard let index = fields["index"]?.intValue, let text = fields["text"]?.stringValue else { return nil }
            self = .text(index: index, text: text, eventId: fields["event_id"]?.stringValue)
        case "reset":
            self = .reset
        default:
            return nil
        }
    }
}
