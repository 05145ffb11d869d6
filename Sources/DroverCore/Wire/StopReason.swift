/// Why a session went idle (`session.status_idle`'s `stop_reason`).
public enum StopReason: WireCodable {
    case endTurn
    /// Blocked on these events (tool confirmations, custom tool results).
    case requiresAction(eventIds: [String])
    case retriesExhausted
    case budgetReached
    case refusal
    /// A type this version does not know, or a known one with fields it does not know.
    case other([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a stop reason object")
        switch try reader.required("type", .string) {
        case "end_turn": self = .endTurn
        case "requires_action": self = .requiresAction(eventIds: try reader.required("event_ids", .array(of: .string, "an array of event ids")))
        case "retries_exhausted": self = .retriesExhausted
        case "budget_reached": self = .budgetReached
        case "refusal": self = .refusal
        default: self = .other(reader.object)
        }
        if !reader.extras.isEmpty { self = .other(reader.object) }
    }

    /// The `type` on the wire, such as `end_turn`.
    public var type: String {
        switch self {
        case .endTurn: "end_turn"
        case .requiresAction: "requires_action"
        case .retriesExhausted: "retries_exhausted"
        case .budgetReached: "budget_reached"
        case .refusal: "refusal"
        case .other(let object): object["type"]?.stringValue ?? ""
        }
    }

    public var wireValue: JSONValue {
        switch self {
        case .endTurn: .object(["type": .string("end_turn")])
        case .requiresAction(let eventIds): .object(["type": .string("requires_action"), "event_ids": eventIds.wireValue])
        case .retriesExhausted: .object(["type": .string("retries_exhausted")])
        case .budgetReached: .object(["type": .string("budget_reached")])
        case .refusal: .object(["type": .string("refusal")])
        case .other(let object): .object(object)
        }
    }
}

/// `session.status_idle`'s `stop_details`; the SDK has only the refusal kind.
public struct RefusalStopDetails: WireCodable {
    /// `cyber`, `bio`, `frontier_llm`, `reasoning_extraction`, `general_harms`; more may come.
    public var category: String?
    public var explanation: String?
    public var extras: WireExtras

    public init(category: String? = nil, explanation: String? = nil, extras: WireExtras = WireExtras()) {
        self.category = category
        self.explanation = explanation
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a stop details object")
        try reader.constant("type", "refusal")
        category = try reader.optional("category", .string)
        explanation = try reader.optional("explanation", .string)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "refusal")
        writer.set("category", category)
        writer.set("explanation", explanation)
        return writer.value
    }
}
