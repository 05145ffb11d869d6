import DroverCore
import DroverTools
import Foundation

public struct ModelMessage: Sendable, Equatable {
    public enum Role: String, Sendable { case user, assistant }
    public var role: Role
    public var content: [ModelContentBlock]

    public init(role: Role, content: [ModelContentBlock]) {
        self.role = role
        self.content = content
    }
}

public struct ModelRequest: Sendable, Equatable {
    public var model: String
    public var system: String?
    public var messages: [ModelMessage]
    public var tools: [ModelToolDefinition]
    public var maxTokens: Int
    /// The session asking: not part of the model API's body; the scripted model is told it
    /// (`AnthropicConfiguration.namesSessions`) to find the session's job item.
    public var session: SessionID?

    public init(model: String, system: String? = nil, messages: [ModelMessage], tools: [ModelToolDefinition] = [], maxTokens: Int = 4096) {
        self.model = model
        self.system = system
        self.messages = messages
        self.tools = tools
        self.maxTokens = maxTokens
    }
}

public struct ModelResponse: Sendable, Equatable {
    public var id: String
    public var model: String
    public var content: [ModelContentBlock]
    /// `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`, `refusal`, `pause_turn`.
    public var stopReason: String
    public var usage: ModelUsage
}

/// What a model client reports while it streams one request.
public enum ModelStreamEvent: Sendable, Equatable {
    /// The request is on the wire, whole: what follows is the model's time. Once per attempt.
    case sent
    case started(id: String, model: String)
    case textDelta(index: Int, text: String)
    case thinkingDelta(index: Int, text: String)
    case toolUseStarted(index: Int, id: String, name: String)
    case inputJSONDelta(index: Int, json: String)
    /// The request failed in a way worth retrying; anything streamed so far is void, and the
    /// request is sent again after `delay`.
    case retrying(attempt: Int, delay: Duration, reason: String)
    case completed(ModelResponse)
}

public protocol ModelClient: Sendable {
    /// Streams one model request. Retries on overload, rate limits and server errors, reporting
    /// each with `.retrying`; ends with `.completed` or throws.
    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelStreamEvent, Error>
}

public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// An error answer from the model API: status, the API's error type, its message.
    case api(status: Int, type: String, message: String, retryAfter: Duration?)
    case transport(String)
    case malformedStream(String)
    case retriesExhausted(attempts: Int, last: String)

    public var isRetryable: Bool {
        switch self {
        case .api(let status, let type, _, _):
            status == 429 || status == 529 || status == 408 || status >= 500 || type == "overloaded_error" || type == "rate_limit_error"
        case .transport: true
        case .malformedStream, .retriesExhausted: false
        }
    }

    public var description: String {
        switch self {
        case .api(let status, let type, let message, _): "model API answered \(status) \(type): \(message)"
        case .transport(let message): "model API unreachable: \(message)"
        case .malformedStream(let message): "model API sent a malformed stream: \(message)"
        case .retriesExhausted(let attempts, let last): "gave up after \(attempts) attempts; last error: \(last)"
        }
    }
}

public struct RetryPolicy: Sendable {
    public var maxAttempts = 5
    public var baseDelay: Duration = .milliseconds(500)
    public var maxDelay: Duration = .seconds(30)

    public init() {}

    /// `retry-after` wins when the server sent one; otherwise exponential with jitter.
    public func delay(attempt: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, maxDelay * 4) }
        let exponential = baseDelay * (1 << min(attempt - 1, 20))
        return min(exponential, maxDelay) * Double.random(in: 0.5...1.0)
    }
}
