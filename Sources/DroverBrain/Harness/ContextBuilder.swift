import DroverCore
import DroverTools

/// Rebuilds the model's conversation from the session log. Tool uses are identified by their
/// event ids, which is what `agent.tool_result.tool_use_id` refers to.
public enum ContextBuilder {
    public static func messages(from events: [StoredEvent]) -> [ModelMessage] {
        var conversation = Conversation()
        conversation.add(contentsOf: events)
        return conversation.messages
    }

    /// The conversation built one event at a time: a turn keeps one and adds each event it
    /// appends, so a long session's JSON is parsed once per turn, not once per model request.
    public struct Conversation: Sendable {
        public private(set) var messages: [ModelMessage] = []
        /// Tool uses without a result yet. A result for a tool use that is not open (two
        /// client answers raced past the API's check) is left out: the model API refuses a
        /// tool_result without its tool_use.
        private var open: Set<String> = []

        public init() {}

        public mutating func add(contentsOf events: some Sequence<StoredEvent>) {
            for event in events { add(event) }
        }

        /// Only the events the model sees are parsed.
        public mutating func add(_ event: StoredEvent) {
            switch event.type {
            case "user.message", "agent.message":
                let fields = event.value.objectValue ?? [:]
                append(event.type == "user.message" ? .user : .assistant, ContextBuilder.contentBlocks(fields["content"]))
            case "agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use":
                let fields = event.value.objectValue ?? [:]
                var name = fields["name"]?.stringValue ?? ""
                // The model knows an MCP tool by its qualified name, the log by server and tool.
                if event.type == "agent.mcp_tool_use", let server = fields["mcp_server_name"]?.stringValue {
                    name = MCPToolName.qualified(server: server, tool: name)
                }
                append(.assistant, [.toolUse(id: event.id, name: name, input: fields["input"] ?? .object([:]))])
                open.insert(event.id)
            case "agent.tool_result", "agent.mcp_tool_result", "user.custom_tool_result":
                let fields = event.value.objectValue ?? [:]
                let useId = ContextBuilder.answeredToolUse(fields) ?? ""
                guard open.remove(useId) != nil else { return }
                var content = ContextBuilder.contentBlocks(fields["content"])
                if content.isEmpty { content = [.text("(no output)")] }
                append(.user, [.toolResult(toolUseId: useId, content: content, isError: fields["is_error"] == .bool(true))])
            default:
                return
            }
        }

        private mutating func append(_ role: ModelMessage.Role, _ blocks: [ModelContentBlock]) {
            guard !blocks.isEmpty else { return }
            if messages.last?.role == role {
                messages[messages.count - 1].content += blocks
            } else {
                messages.append(ModelMessage(role: role, content: blocks))
            }
        }
    }

    /// The tool use a result answers: `tool_use_id` (agent.tool_result), `mcp_tool_use_id`
    /// (agent.mcp_tool_result) or `custom_tool_use_id` (user.custom_tool_result).
    public static func answeredToolUse(_ fields: [String: JSONValue]) -> String? {
        fields["tool_use_id"]?.stringValue ?? fields["mcp_tool_use_id"]?.stringValue ?? fields["custom_tool_use_id"]?.stringValue
    }

    /// Tool uses Drover runs itself (`agent.tool_use`, `agent.mcp_tool_use`) with no result: a
    /// crash cut them off. Custom tool uses are left out: the client answers those.
    public static func danglingToolUses(in events: [StoredEvent]) -> [StoredEvent] {
        let waiting = Set(awaitingConfirmation(in: events).map(\.id))
        // A confirmed tool use runs after the session.status_running that follows its
        // confirmation; without one, it has not started and is not a crash victim.
        var confirmedAt: [String: Int64] = [:]
        for event in events where event.type == "user.tool_confirmation" {
            if let id = event.value.objectValue?["tool_use_id"]?.stringValue { confirmedAt[id] = event.seq }
        }
        let lastRunning = events.last { $0.type == "session.status_running" }?.seq ?? 0
        return openToolUses(in: events).filter { use in
            if use.type == "agent.custom_tool_use" || waiting.contains(use.id) { return false }
            if let confirmed = confirmedAt[use.id], lastRunning < confirmed { return false }
            return true
        }
    }

    /// Tool uses held for `user.tool_confirmation` (evaluated_permission "ask") that no
    /// confirmation has answered yet.
    public static func awaitingConfirmation(in events: [StoredEvent]) -> [StoredEvent] {
        let answered = Set(confirmations(in: events).keys)
        return openToolUses(in: events).filter {
            ($0.type == "agent.tool_use" || $0.type == "agent.mcp_tool_use") && $0.value.objectValue?["evaluated_permission"]?.stringValue == "ask"
                && !answered.contains($0.id)
        }
    }

    /// The confirmations received, by tool use id: allowed, and the deny message if denied.
    public static func confirmations(in events: [StoredEvent]) -> [String: (allow: Bool, message: String?)] {
        var answers: [String: (allow: Bool, message: String?)] = [:]
        for event in events where event.type == "user.tool_confirmation" {
            let fields = event.value.objectValue ?? [:]
            guard let id = fields["tool_use_id"]?.stringValue else { continue }
            answers[id] = (fields["result"]?.stringValue == "allow", fields["deny_message"]?.stringValue)
        }
        return answers
    }

    /// Custom tool uses still waiting for the client's `user.custom_tool_result`.
    public static func pendingCustomToolUses(in events: [StoredEvent]) -> [StoredEvent] {
        openToolUses(in: events).filter { $0.type == "agent.custom_tool_use" }
    }

    static func openToolUses(in events: [StoredEvent]) -> [StoredEvent] {
        var open: [String: StoredEvent] = [:]
        var order: [String] = []
        for event in events {
            let fields = event.value.objectValue ?? [:]
            switch event.type {
            case "agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use":
                open[event.id] = event
                order.append(event.id)
            case "agent.tool_result", "agent.mcp_tool_result", "user.custom_tool_result":
                let useId = ContextBuilder.answeredToolUse(fields) ?? ""
                open.removeValue(forKey: useId)
            default:
                break
            }
        }
        return order.compactMap { open[$0] }
    }

    /// `span.model_request_start` events with no matching end: model calls a crash cut off.
    public static func danglingModelRequests(in events: [StoredEvent]) -> [StoredEvent] {
        var open: [String: StoredEvent] = [:]
        var order: [String] = []
        for event in events {
            switch event.type {
            case "span.model_request_start":
                open[event.id] = event
                order.append(event.id)
            case "span.model_request_end":
                if let start = event.value.objectValue?["model_request_start_id"]?.stringValue { open.removeValue(forKey: start) }
            default:
                break
            }
        }
        return order.compactMap { open[$0] }
    }

    static func contentBlocks(_ value: JSONValue?) -> [ModelContentBlock] {
        switch value {
        case .string(let text)?:
            return [.text(text)]
        case .array(let blocks)?:
            return blocks.compactMap { block in
                let fields = block.objectValue ?? [:]
                if fields["type"]?.stringValue == "text", let text = fields["text"]?.stringValue { return .text(text) }
                return nil
            }
        default:
            return []
        }
    }
}
