/// `agent.message`
public struct AgentMessage: EventFields {
    /// Text and redacted blocks.
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

/// `agent.tool_use`: a built-in agent tool.
public struct AgentToolUse: EventFields {
    public var name: String
    public var input: [String: JSONValue]
    public var evaluatedPermission: EvaluatedPermission?
    public var evaluation: ToolEvaluation?
    /// Set when cross-posted from a subagent's thread.
    public var sessionThreadId: String?

    public init(
        name: String, input: [String: JSONValue], evaluatedPermission: EvaluatedPermission? = nil, evaluation: ToolEvaluation? = nil,
        sessionThreadId: String? = nil
    ) {
        self.name = name
        self.input = input
        self.evaluatedPermission = evaluatedPermission
        self.evaluation = evaluation
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        name = try reader.required("name", .string)
        input = try reader.required("input", .object)
        evaluatedPermission = try reader.optional("evaluated_permission", .oneOf)
        evaluation = try reader.optional("evaluation", .wire(ToolEvaluation.self, "a tool evaluation object"))
        sessionThreadId = try reader.optional("session_thread_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("name", name)
        writer.set("input", input)
        writer.set("evaluated_permission", evaluatedPermission?.rawValue)
        writer.set("evaluation", evaluation)
        writer.set("session_thread_id", sessionThreadId)
    }
}

/// `agent.mcp_tool_use`
public struct AgentMCPToolUse: EventFields {
    public var mcpServerName: String
    public var name: String
    public var input: [String: JSONValue]
    public var evaluatedPermission: EvaluatedPermission?
    public var evaluation: ToolEvaluation?
    /// Set when cross-posted from a subagent's thread.
    public var sessionThreadId: String?

    public init(
        mcpServerName: String, name: String, input: [String: JSONValue], evaluatedPermission: EvaluatedPermission? = nil,
        evaluation: ToolEvaluation? = nil, sessionThreadId: String? = nil
    ) {
        self.mcpServerName = mcpServerName
        self.name = name
        self.input = input
        self.evaluatedPermission = evaluatedPermission
        self.evaluation = evaluation
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        mcpServerName = try reader.required("mcp_server_name", .string)
        let tool = try AgentToolUse(reading: &reader)
        name = tool.name
        input = tool.input
        evaluatedPermission = tool.evaluatedPermission
        evaluation = tool.evaluation
        sessionThreadId = tool.sessionThreadId
    }

    func write(to writer: inout WireWriter) {
        writer.set("mcp_server_name", mcpServerName)
        AgentToolUse(name: name, input: input, evaluatedPermission: evaluatedPermission, evaluation: evaluation, sessionThreadId: sessionThreadId)
            .write(to: &writer)
    }
}

/// `agent.custom_tool_use`: the session waits for a `user.custom_tool_result`.
public struct AgentCustomToolUse: EventFields {
    public var name: String
    public var input: [String: JSONValue]
    /// Set when cross-posted from a subagent's thread.
    public var sessionThreadId: String?

    public init(name: String, input: [String: JSONValue], sessionThreadId: String? = nil) {
        self.name = name
        self.input = input
        self.sessionThreadId = sessionThreadId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        name = try reader.required("name", .string)
        input = try reader.required("input", .object)
        sessionThreadId = try reader.optional("session_thread_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("name", name)
        writer.set("input", input)
        writer.set("session_thread_id", sessionThreadId)
    }
}

/// `agent.tool_result`
public struct AgentToolResult: EventFields {
    /// The `agent.tool_use` event this answers.
    public var toolUseId: String
    public var content: [ContentBlock]?
    public var isError: Bool?

    public init(toolUseId: String, content: [ContentBlock]? = nil, isError: Bool? = nil) {
        self.toolUseId = toolUseId
        self.content = content
        self.isError = isError
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        toolUseId = try reader.required("tool_use_id", .string)
        content = try reader.optional("content", .contentBlocks)
        isError = try reader.optional("is_error", .bool)
    }

    func write(to writer: inout WireWriter) {
        writer.set("tool_use_id", toolUseId)
        writer.set("content", content)
        writer.set("is_error", isError)
    }
}

/// `agent.mcp_tool_result`
public struct AgentMCPToolResult: EventFields {
    /// The `agent.mcp_tool_use` event this answers.
    public var mcpToolUseId: String
    public var content: [ContentBlock]?
    public var isError: Bool?

    public init(mcpToolUseId: String, content: [ContentBlock]? = nil, isError: Bool? = nil) {
        self.mcpToolUseId = mcpToolUseId
        self.content = content
        self.isError = isError
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        mcpToolUseId = try reader.required("mcp_tool_use_id", .string)
        content = try reader.optional("content", .contentBlocks)
        isError = try reader.optional("is_error", .bool)
    }

    func write(to writer: inout WireWriter) {
        writer.set("mcp_tool_use_id", mcpToolUseId)
        writer.set("content", content)
        writer.set("is_error", isError)
    }
}

/// `agent.thread_context_compacted`: from here on, the thread's model context starts at
/// `summary`, followed by the events from `first_kept_event_id` on. The SDK's event carries only
/// its envelope; `summary` and `first_kept_event_id` are Drover's, so that any worker rebuilds
/// the same context from the log, which keeps every original event.
public struct AgentThreadContextCompacted: EventFields {
    /// What the model wrote when asked to summarise the earlier part (ContextCompaction.prompt).
    /// Nil in an event Drover did not write: the context is then rebuilt without it.
    public var summary: String?
    /// The first event kept word for word after the summary; nil: none, the summary is all.
    public var firstKeptEventId: String?

    public init(summary: String?, firstKeptEventId: String?) {
        self.summary = summary
        self.firstKeptEventId = firstKeptEventId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        summary = try reader.optional("summary", .string)
        firstKeptEventId = try reader.optional("first_kept_event_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("summary", summary)
        writer.set("first_kept_event_id", firstKeptEventId)
    }
}
