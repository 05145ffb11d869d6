/// `user.message`
public struct UserMessage: EventFields {
    public var content: [ContentBlock]

    public init(content: [ContentBlock]) {
        self.content = content
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        content = try reader.required("content", .contentBlocks)
    }

    func write(to writer: inout WireWriter) {
        writer.set("content", content)
    }
}

/// `user.interrupt`
public struct UserInterrupt: EventFields {
    /// Only this thread; absent interrupts every thread.
    public var sessionThreadId: String?

    public init(sessionThreadId: String? = nil) {
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        sessionThreadId = try reader.optional("session_thread_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("session_thread_id", sessionThreadId)
    }
}

public enum ToolConfirmationResult: String, Sendable, Hashable, CaseIterable {
    case allow, deny
}

/// `user.tool_confirmation`
public struct UserToolConfirmation: EventFields {
    public var result: ToolConfirmationResult
    /// The `agent.tool_use` or `agent.mcp_tool_use` event this answers.
    public var toolUseId: String
    /// Only with `deny`.
    public var denyMessage: String?
    /// Set by the server when routed to a subagent thread.
    public var sessionThreadId: String?

    public init(result: ToolConfirmationResult, toolUseId: String, denyMessage: String? = nil, sessionThreadId: String? = nil) {
        self.result = result
        self.toolUseId = toolUseId
        self.denyMessage = denyMessage
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        result = try reader.required("result", .oneOf)
        toolUseId = try reader.required("tool_use_id", .string)
        denyMessage = try reader.optional("deny_message", .string)
        sessionThreadId = try reader.optional("session_thread_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("result", result.rawValue)
        writer.set("tool_use_id", toolUseId)
        writer.set("deny_message", denyMessage)
        writer.set("session_thread_id", sessionThreadId)
    }
}

/// `user.tool_result`: a self-hosted environment's worker answers an `agent.tool_use` it ran.
public struct UserToolResult: EventFields {
    /// The `agent.tool_use` event this answers.
    public var toolUseId: String
    public var content: [ContentBlock]?
    public var isError: Bool?
    /// Set by the server when routed to a subagent thread.
    public var sessionThreadId: String?

    public init(toolUseId: String, content: [ContentBlock]? = nil, isError: Bool? = nil, sessionThreadId: String? = nil) {
        self.toolUseId = toolUseId
        self.content = content
        self.isError = isError
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        toolUseId = try reader.required("tool_use_id", .string)
        content = try reader.optional("content", .contentBlocks)
        isError = try reader.optional("is_error", .bool)
        sessionThreadId = try reader.optional("session_thread_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("tool_use_id", toolUseId)
        writer.set("content", content)
        writer.set("is_error", isError)
        writer.set("session_thread_id", sessionThreadId)
    }
}

/// `user.custom_tool_result`
public struct UserCustomToolResult: EventFields {
    /// The `agent.custom_tool_use` event this answers.
    public var customToolUseId: String
    public var content: [ContentBlock]?
    public var isError: Bool?
    /// Set by the server when routed to a subagent thread.
    public var sessionThreadId: String?

    public init(customToolUseId: String, content: [ContentBlock]? = nil, isError: Bool? = nil, sessionThreadId: String? = nil) {
        self.customToolUseId = customToolUseId
        self.content = content
        self.isError = isError
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        customToolUseId = try reader.required("custom_tool_use_id", .string)
        content = try reader.optional("content", .contentBlocks)
        isError = try reader.optional("is_error", .bool)
        sessionThreadId = try reader.optional("session_thread_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("custom_tool_use_id", customToolUseId)
        writer.set("content", content)
        writer.set("is_error", isError)
        writer.set("session_thread_id", sessionThreadId)
    }
}
