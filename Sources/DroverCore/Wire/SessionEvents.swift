/// `session.status_idle`
public struct SessionStatusIdle: EventFields {
    public var stopReason: StopReason
    /// `null` (or absent) when there is nothing more to report.
    public var stopDetails: RefusalStopDetails?

    public init(stopReason: StopReason, stopDetails: RefusalStopDetails? = nil) {
        self.stopReason = stopReason
        self.stopDetails = stopDetails
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        stopReason = try reader.required("stop_reason", .wire(StopReason.self, "a stop reason object such as {\"type\": \"end_turn\"}"))
        stopDetails = try reader.optional("stop_details", .wire(RefusalStopDetails.self, "a stop details object"))
    }

    func write(to writer: inout WireWriter) {
        writer.set("stop_reason", stopReason)
        writer.set("stop_details", stopDetails)
    }
}

/// `session.error`
public struct SessionErrorEvent: EventFields {
    public var error: SessionErrorObject

    public init(error: SessionErrorObject) {
        self.error = error
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        error = try reader.required("error", .wire(SessionErrorObject.self, "an error object"))
    }

    func write(to writer: inout WireWriter) {
        writer.set("error", error)
    }
}

/// `session.usage`: a periodic snapshot of cumulative usage.
public struct SessionUsage: EventFields {
    public var usage: SessionUsageSnapshot
    /// `nil` when the session has no budget.
    public var budget: BudgetLimit?

    public init(usage: SessionUsageSnapshot, budget: BudgetLimit? = nil) {
        self.usage = usage
        self.budget = budget
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        usage = try reader.required("usage", .wire(SessionUsageSnapshot.self, "a usage object"))
        budget = try reader.optional("budget", .wire(BudgetLimit.self, "a budget object"))
    }

    func write(to writer: inout WireWriter) {
        writer.set("usage", usage)
        writer.set("budget", budget)
    }
}

/// `session.updated`: only the fields an update changed are present. A `budget` of `null`
/// means the budget was removed; `SessionEvent.extras.explicitNulls` records that, and the
/// event re-encodes it.
public struct SessionUpdated: EventFields {
    /// The full effective agent after the update (`BetaManagedAgentsSessionAgent`), kept as JSON.
    public var agent: [String: JSONValue]?
    public var budget: BudgetLimit?
    public var metadata: [String: String]?
    public var title: String?

    public init(agent: [String: JSONValue]? = nil, budget: BudgetLimit? = nil, metadata: [String: String]? = nil, title: String? = nil) {
        self.agent = agent
        self.budget = budget
        self.metadata = metadata
        self.title = title
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        agent = try reader.optional("agent", .object)
        budget = try reader.optional("budget", .wire(BudgetLimit.self, "a budget object"))
        metadata = try reader.optional("metadata", .stringMap)
        title = try reader.optional("title", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("agent", agent)
        writer.set("budget", budget)
        writer.set("metadata", metadata)
        writer.set("title", title)
    }
}

/// `span.model_request_end`
public struct SpanModelRequestEnd: EventFields {
    /// The `span.model_request_start` event this closes.
    public var modelRequestStartId: String
    public var modelUsage: ModelUsage
    public var isError: Bool?

    public init(modelRequestStartId: String, modelUsage: ModelUsage, isError: Bool? = nil) {
        self.modelRequestStartId = modelRequestStartId
        self.modelUsage = modelUsage
        self.isError = isError
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        modelRequestStartId = try reader.required("model_request_start_id", .string)
        modelUsage = try reader.required("model_usage", .wire(ModelUsage.self, "a model usage object"))
        isError = try reader.optional("is_error", .bool)
    }

    func write(to writer: inout WireWriter) {
        writer.set("model_request_start_id", modelRequestStartId)
        writer.set("model_usage", modelUsage)
        writer.set("is_error", isError)
    }
}
