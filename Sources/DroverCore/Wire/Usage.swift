/// Token usage of one model request: what a model client reports, and `span.model_request_end`'s
/// `model_usage`.
public struct ModelUsage: WireCodable {
    public var cacheCreationInputTokens: Int
    public var cacheReadInputTokens: Int
    public var inputTokens: Int
    public var outputTokens: Int
    /// `standard` or `fast`; present only under the fast-mode beta.
    public var speed: String?
    public var extras: WireExtras

    public init(
        cacheCreationInputTokens: Int = 0, cacheReadInputTokens: Int = 0, inputTokens: Int = 0, outputTokens: Int = 0, speed: String? = nil,
        extras: WireExtras = WireExtras()
    ) {
        self.cacheCreationInputTokens = cacheCreationInputTokens
        self.cacheReadInputTokens = cacheReadInputTokens
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.speed = speed
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a model usage object")
        cacheCreationInputTokens = try reader.required("cache_creation_input_tokens", .int)
        cacheReadInputTokens = try reader.required("cache_read_input_tokens", .int)
        inputTokens = try reader.required("input_tokens", .int)
        outputTokens = try reader.required("output_tokens", .int)
        speed = try reader.optional("speed", .string)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("cache_creation_input_tokens", cacheCreationInputTokens)
        writer.set("cache_read_input_tokens", cacheReadInputTokens)
        writer.set("input_tokens", inputTokens)
        writer.set("output_tokens", outputTokens)
        writer.set("speed", speed)
        return writer.value
    }

    /// The token counts added; `speed` and unknown fields are not summed, so they are dropped.
    public static func + (lhs: ModelUsage, rhs: ModelUsage) -> ModelUsage {
        ModelUsage(
            cacheCreationInputTokens: lhs.cacheCreationInputTokens + rhs.cacheCreationInputTokens,
            cacheReadInputTokens: lhs.cacheReadInputTokens + rhs.cacheReadInputTokens, inputTokens: lhs.inputTokens + rhs.inputTokens,
            outputTokens: lhs.outputTokens + rhs.outputTokens)
    }
}

/// A session's cumulative usage (`session.usage`'s `usage`); every field is optional.
public struct SessionUsageSnapshot: WireCodable {
    public var activeSeconds: Double?
    public var cacheCreation: CacheCreationUsage?
    public var cacheReadInputTokens: Int?
    public var inputTokens: Int?
    public var listCost: MonetaryAmount?
    public var outputTokens: Int?
    public var serverToolUse: ServerToolUsage?
    public var extras: WireExtras

    public init(
        activeSeconds: Double? = nil, cacheCreation: CacheCreationUsage? = nil, cacheReadInputTokens: Int? = nil, inputTokens: Int? = nil,
        listCost: MonetaryAmount? = nil, outputTokens: Int? = nil, serverToolUse: ServerToolUsage? = nil, extras: WireExtras = WireExtras()
    ) {
        self.activeSeconds = activeSeconds
        self.cacheCreation = cacheCreation
        self.cacheReadInputTokens = cacheReadInputTokens
        self.inputTokens = inputTokens
        self.listCost = listCost
        self.outputTokens = outputTokens
        self.serverToolUse = serverToolUse
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a usage object")
        activeSeconds = try reader.optional("active_seconds", .double)
        cacheCreation = try reader.optional("cache_creation", .wire(CacheCreationUsage.self, "a cache creation usage object"))
        cacheReadInputTokens = try reader.optional("cache_read_input_tokens", .int)
        inputTokens = try reader.optional("input_tokens", .int)
        listCost = try reader.optional("list_cost", .wire(MonetaryAmount.self, "a monetary amount object"))
        outputTokens = try reader.optional("output_tokens", .int)
        serverToolUse = try reader.optional("server_tool_use", .wire(ServerToolUsage.self, "a server tool usage object"))
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("active_seconds", activeSeconds)
        writer.set("cache_creation", cacheCreation)
        writer.set("cache_read_input_tokens", cacheReadInputTokens)
        writer.set("input_tokens", inputTokens)
        writer.set("list_cost", listCost)
        writer.set("output_tokens", outputTokens)
        writer.set("server_tool_use", serverToolUse)
        return writer.value
    }
}

public struct CacheCreationUsage: WireCodable {
    public var ephemeral1hInputTokens: Int?
    public var ephemeral5mInputTokens: Int?
    public var extras: WireExtras

    public init(ephemeral1hInputTokens: Int? = nil, ephemeral5mInputTokens: Int? = nil, extras: WireExtras = WireExtras()) {
        self.ephemeral1hInputTokens = ephemeral1hInputTokens
        self.ephemeral5mInputTokens = ephemeral5mInputTokens
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a cache creation usage object")
        ephemeral1hInputTokens = try reader.optional("ephemeral_1h_input_tokens", .int)
        ephemeral5mInputTokens = try reader.optional("ephemeral_5m_input_tokens", .int)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("ephemeral_1h_input_tokens", ephemeral1hInputTokens)
        writer.set("ephemeral_5m_input_tokens", ephemeral5mInputTokens)
        return writer.value
    }
}

public struct ServerToolUsage: WireCodable {
    public var webFetchRequests: Int?
    public var webSearchRequests: Int?
    public var extras: WireExtras

    public init(webFetchRequests: Int? = nil, webSearchRequests: Int? = nil, extras: WireExtras = WireExtras()) {
        self.webFetchRequests = webFetchRequests
        self.webSearchRequests = webSearchRequests
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a server tool usage object")
        webFetchRequests = try reader.optional("web_fetch_requests", .int)
        webSearchRequests = try reader.optional("web_search_requests", .int)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("web_fetch_requests", webFetchRequests)
        writer.set("web_search_requests", webSearchRequests)
        return writer.value
    }
}

/// Money in minor units as a decimal string (`"2500"` is $25.00), so no float rounding.
public struct MonetaryAmount: WireCodable {
    public var amount: String
    /// Uppercase ISO-4217; only `USD` so far.
    public var currency: String
    public var extras: WireExtras

    public init(amount: String, currency: String = "USD", extras: WireExtras = WireExtras()) {
        self.amount = amount
        self.currency = currency
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a monetary amount object")
        amount = try reader.required("amount", .string)
        currency = try reader.required("currency", .string)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("amount", amount)
        writer.set("currency", currency)
        return writer.value
    }
}

/// A session budget (`"type": "limit"`, the only kind).
public struct BudgetLimit: WireCodable {
    public var maxListCost: MonetaryAmount
    public var extras: WireExtras

    public init(maxListCost: MonetaryAmount, extras: WireExtras = WireExtras()) {
        self.maxListCost = maxListCost
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a budget object")
        try reader.constant("type", "limit")
        maxListCost = try reader.required("max_list_cost", .wire(MonetaryAmount.self, "a monetary amount object"))
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "limit")
        writer.set("max_list_cost", maxListCost)
        return writer.value
    }
}
