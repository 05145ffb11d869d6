/// `agent.thread_message_sent`: written to the sender's log when one thread messages another.
public struct AgentThreadMessageSent: EventFields {
    public var content: [ContentBlock]
    public var toSessionThreadId: String
    /// The callable agent the message went to; nil when it went to the primary thread.
    public var toAgentName: String?

    public init(content: [ContentBlock], toSessionThreadId: String, toAgentName: String?) {
        self.content = content
        self.toSessionThreadId = toSessionThreadId
        self.toAgentName = toAgentName
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        content = try reader.required("content", .contentBlocks)
        toSessionThreadId = try reader.required("to_session_thread_id", .string)
        toAgentName = try reader.optional("to_agent_name", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("content", content)
        writer.set("to_session_thread_id", toSessionThreadId)
        writer.set("to_agent_name", toAgentName)
    }
}

/// `agent.thread_message_received`: a message from another thread, written to the receiver's
/// log. It is turn input, as a `user.message` is.
public struct AgentThreadMessageReceived: EventFields {
    public var content: [ContentBlock]
    public var fromSessionThreadId: String
    /// The callable agent the message came from; nil when it came from the primary thread.
    public var fromAgentName: String?

    public init(content: [ContentBlock], fromSessionThreadId: String, fromAgentName: String?) {
        self.content = content
        self.fromSessionThreadId = fromSessionThreadId
        self.fromAgentName = fromAgentName
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        content = try reader.required("content", .contentBlocks)
        fromSessionThreadId = try reader.required("from_session_thread_id", .string)
        fromAgentName = try reader.optional("from_agent_name", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("content", content)
        writer.set("from_session_thread_id", fromSessionThreadId)
        writer.set("from_agent_name", fromAgentName)
    }
}

/// `session.thread_created`: a child thread began, written to its parent's log.
public struct SessionThreadCreated: EventFields {
    public var sessionThreadId: String
    public var agentName: String
    /// Set for a thread a workflow run started; Drover's threads are started by tool calls.
    public var workflowRunId: String?

    public init(sessionThreadId: String, agentName: String, workflowRunId: String? = nil) {
        self.sessionThreadId = sessionThreadId
        self.agentName = agentName
        self.workflowRunId = workflowRunId
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        sessionThreadId = try reader.required("session_thread_id", .string)
        agentName = try reader.required("agent_name", .string)
        workflowRunId = try reader.optional("workflow_run_id", .string)
    }

    func write(to writer: inout WireWriter) {
        writer.set("session_thread_id", sessionThreadId)
        writer.set("agent_name", agentName)
        writer.set("workflow_run_id", workflowRunId)
    }
}

/// `session.thread_status_running`, `_idle` and `_terminated`: a child thread's status,
/// cross-posted to the primary thread's log. `stopReason` only for idle.
public struct SessionThreadStatus: EventFields {
    public var sessionThreadId: String
    public var agentName: String
    public var stopReason: StopReason?

    public init(sessionThreadId: String, agentName: String, stopReason: StopReason? = nil) {
        self.sessionThreadId = sessionThreadId
        self.agentName = agentName
        self.stopReason = stopReason
    }

    init(reading reader: inout WireReader) throws(WireDecodingError) {
        sessionThreadId = try reader.required("session_thread_id", .string)
        agentName = try reader.required("agent_name", .string)
        stopReason = try reader.optional("stop_reason", .wire(StopReason.self, "a stop reason object such as {\"type\": \"end_turn\"}"))
    }

    func write(to writer: inout WireWriter) {
        writer.set("session_thread_id", sessionThreadId)
        writer.set("agent_name", agentName)
        if let stopReason { writer.set("stop_reason", stopReason) }
    }
}
