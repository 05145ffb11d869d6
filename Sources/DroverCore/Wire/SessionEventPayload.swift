/// What an event says, one case per typed event type. The other types decode as `.other`
/// with their fields (everything but `id`, `type` and `processed_at`) kept as JSON.
public enum SessionEventPayload: Sendable, Hashable {
    case userMessage(UserMessage)
    case userInterrupt(UserInterrupt)
    case userToolConfirmation(UserToolConfirmation)
    case userCustomToolResult(UserCustomToolResult)
    case userToolResult(UserToolResult)
    case agentMessage(AgentMessage)
    case agentThinking
    case agentToolUse(AgentToolUse)
    case agentToolResult(AgentToolResult)
    case agentMCPToolUse(AgentMCPToolUse)
    case agentMCPToolResult(AgentMCPToolResult)
    case agentCustomToolUse(AgentCustomToolUse)
    case agentThreadContextCompacted(AgentThreadContextCompacted)
    case agentThreadMessageSent(AgentThreadMessageSent)
    case agentThreadMessageReceived(AgentThreadMessageReceived)
    case sessionThreadCreated(SessionThreadCreated)
    case sessionThreadStatusRunning(SessionThreadStatus)
    case sessionThreadStatusIdle(SessionThreadStatus)
    case sessionThreadStatusTerminated(SessionThreadStatus)
    case sessionStatusRunning
    case sessionStatusIdle(SessionStatusIdle)
    case sessionStatusRescheduled
    case sessionStatusTerminated
    case sessionError(SessionErrorEvent)
    case sessionUsage(SessionUsage)
    case sessionUpdated(SessionUpdated)
    case spanModelRequestStart
    case spanModelRequestEnd(SpanModelRequestEnd)
    /// Any other type. The type is carried here, not in `fields`, so it cannot disagree.
    case other(SessionEventType, [String: JSONValue])

    public var type: SessionEventType {
        switch self {
        case .userMessage: .userMessage
        case .userInterrupt: .userInterrupt
        case .userToolConfirmation: .userToolConfirmation
        case .userCustomToolResult: .userCustomToolResult
        case .userToolResult: .userToolResult
        case .agentMessage: .agentMessage
        case .agentThinking: .agentThinking
        case .agentToolUse: .agentToolUse
        case .agentToolResult: .agentToolResult
        case .agentMCPToolUse: .agentMcpToolUse
        case .agentMCPToolResult: .agentMcpToolResult
        case .agentCustomToolUse: .agentCustomToolUse
        case .agentThreadContextCompacted: .agentThreadContextCompacted
        case .agentThreadMessageSent: .agentThreadMessageSent
        case .agentThreadMessageReceived: .agentThreadMessageReceived
        case .sessionThreadCreated: .sessionThreadCreated
        case .sessionThreadStatusRunning: .sessionThreadStatusRunning
        case .sessionThreadStatusIdle: .sessionThreadStatusIdle
        case .sessionThreadStatusTerminated: .sessionThreadStatusTerminated
        case .sessionStatusRunning: .sessionStatusRunning
        case .sessionStatusIdle: .sessionStatusIdle
        case .sessionStatusRescheduled: .sessionStatusRescheduled
        case .sessionStatusTerminated: .sessionStatusTerminated
        case .sessionError: .sessionError
        case .sessionUsage: .sessionUsage
        case .sessionUpdated: .sessionUpdated
        case .spanModelRequestStart: .spanModelRequestStart
        case .spanModelRequestEnd: .spanModelRequestEnd
        case .other(let type, _): type
        }
    }

    /// Whether `type` has its own case; `false` means it decodes as `.other`.
    public static func isTyped(_ type: SessionEventType) -> Bool {
        switch type {
        case .userMessage, .userInterrupt, .userToolConfirmation, .userCustomToolResult, .userToolResult,
            .agentMessage, .agentThinking, .agentToolUse, .agentToolResult, .agentMcpToolUse,
            .agentMcpToolResult, .agentCustomToolUse, .agentThreadContextCompacted, .agentThreadMessageSent, .agentThreadMessageReceived,
            .sessionThreadCreated, .sessionThreadStatusRunning, .sessionThreadStatusIdle, .sessionThreadStatusTerminated,
            .sessionStatusRunning, .sessionStatusIdle,
            .sessionStatusRescheduled, .sessionStatusTerminated, .sessionError, .sessionUsage,
            .sessionUpdated, .spanModelRequestStart, .spanModelRequestEnd:
            true
        default:
            false
        }
    }

    /// Reads the fields of a `type` event; the envelope fields must be read already.
    static func read(_ type: SessionEventType, from reader: inout WireReader) throws(WireDecodingError) -> Self {
        switch type {
        case .userMessage: .userMessage(try UserMessage(reading: &reader))
        case .userInterrupt: .userInterrupt(try UserInterrupt(reading: &reader))
        case .userToolConfirmation: .userToolConfirmation(try UserToolConfirmation(reading: &reader))
        case .userCustomToolResult: .userCustomToolResult(try UserCustomToolResult(reading: &reader))
        case .userToolResult: .userToolResult(try UserToolResult(reading: &reader))
        case .agentMessage: .agentMessage(try AgentMessage(reading: &reader))
        case .agentThinking: .agentThinking
        case .agentToolUse: .agentToolUse(try AgentToolUse(reading: &reader))
        case .agentToolResult: .agentToolResult(try AgentToolResult(reading: &reader))
        case .agentMcpToolUse: .agentMCPToolUse(try AgentMCPToolUse(reading: &reader))
        case .agentMcpToolResult: .agentMCPToolResult(try AgentMCPToolResult(reading: &reader))
        case .agentCustomToolUse: .agentCustomToolUse(try AgentCustomToolUse(reading: &reader))
        case .agentThreadContextCompacted: .agentThreadContextCompacted(try AgentThreadContextCompacted(reading: &reader))
        case .agentThreadMessageSent: .agentThreadMessageSent(try AgentThreadMessageSent(reading: &reader))
        case .agentThreadMessageReceived: .agentThreadMessageReceived(try AgentThreadMessageReceived(reading: &reader))
        case .sessionThreadCreated: .sessionThreadCreated(try SessionThreadCreated(reading: &reader))
        case .sessionThreadStatusRunning: .sessionThreadStatusRunning(try SessionThreadStatus(reading: &reader))
        case .sessionThreadStatusIdle: .sessionThreadStatusIdle(try SessionThreadStatus(reading: &reader))
        case .sessionThreadStatusTerminated: .sessionThreadStatusTerminated(try SessionThreadStatus(reading: &reader))
        case .sessionStatusRunning: .sessionStatusRunning
        case .sessionStatusIdle: .sessionStatusIdle(try SessionStatusIdle(reading: &reader))
        case .sessionStatusRescheduled: .sessionStatusRescheduled
        case .sessionStatusTerminated: .sessionStatusTerminated
        case .sessionError: .sessionError(try SessionErrorEvent(reading: &reader))
        case .sessionUsage: .sessionUsage(try SessionUsage(reading: &reader))
        case .sessionUpdated: .sessionUpdated(try SessionUpdated(reading: &reader))
        case .spanModelRequestStart: .spanModelRequestStart
        case .spanModelRequestEnd: .spanModelRequestEnd(try SpanModelRequestEnd(reading: &reader))
        default: .other(type, reader.remaining())
        }
    }

    func write(to writer: inout WireWriter) {
        switch self {
        case .userMessage(let fields): fields.write(to: &writer)
        case .userInterrupt(let fields): fields.write(to: &writer)
        case .userToolConfirmation(let fields): fields.write(to: &writer)
        case .userCustomToolResult(let fields): fields.write(to: &writer)
        case .userToolResult(let fields): fields.write(to: &writer)
        case .agentMessage(let fields): fields.write(to: &writer)
        case .agentToolUse(let fields): fields.write(to: &writer)
        case .agentToolResult(let fields): fields.write(to: &writer)
        case .agentMCPToolUse(let fields): fields.write(to: &writer)
        case .agentMCPToolResult(let fields): fields.write(to: &writer)
        case .agentCustomToolUse(let fields): fields.write(to: &writer)
        case .agentThreadContextCompacted(let fields): fields.write(to: &writer)
        case .agentThreadMessageSent(let fields): fields.write(to: &writer)
        case .agentThreadMessageReceived(let fields): fields.write(to: &writer)
        case .sessionThreadCreated(let fields): fields.write(to: &writer)
        case .sessionThreadStatusRunning(let fields), .sessionThreadStatusIdle(let fields), .sessionThreadStatusTerminated(let fields):
            fields.write(to: &writer)
        case .sessionStatusIdle(let fields): fields.write(to: &writer)
        case .sessionError(let fields): fields.write(to: &writer)
        case .sessionUsage(let fields): fields.write(to: &writer)
        case .sessionUpdated(let fields): fields.write(to: &writer)
        case .spanModelRequestEnd(let fields): fields.write(to: &writer)
        case .other(_, let fields): writer.merge(fields)
        case .agentThinking, .sessionStatusRunning, .sessionStatusRescheduled, .sessionStatusTerminated, .spanModelRequestStart:
            break
        }
    }
}

extension SessionEventPayload {
    /// The id of the tool use this result answers: `agent.tool_result`'s `tool_use_id`,
    /// `agent.mcp_tool_result`'s `mcp_tool_use_id` or `user.custom_tool_result`'s
    /// `custom_tool_use_id`, or `user.tool_result`'s `tool_use_id`. Nil for every other event.
    public var answeredToolUse: String? {
        switch self {
        case .agentToolResult(let result): result.toolUseId
        case .agentMCPToolResult(let result): result.mcpToolUseId
        case .userCustomToolResult(let result): result.customToolUseId
        case .userToolResult(let result): result.toolUseId
        default: nil
        }
    }

    /// The event's fields as the wire writes them, without `id`, `type` and `processed_at`.
    public var fields: [String: JSONValue] {
        var writer = WireWriter()
        write(to: &writer)
        return writer.object
    }
}

extension UserMessage {
    /// A message of one text block.
    public init(text: String) {
        self.init(content: [.text(text)])
    }
}

extension AgentMessage {
    /// The text blocks, joined by newlines: what a reader of the message sees.
    public var text: String {
        content.compactMap(\.text).joined(separator: "\n")
    }
}
