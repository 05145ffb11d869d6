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
    /// An `agent.thread_context_compacted` replaces what it summarised with its summary.
    public struct Conversation: Sendable {
        public private(set) var messages: [ModelMessage] = []
        /// The id of the event each message starts at: where a compaction may cut.
        public private(set) var starts: [String] = []
        /// Each message's size in bytes as the model API gets it, near enough to count tokens by.
        public private(set) var sizes: [Int] = []
        /// Tool uses without a result yet. A result for a tool use that is not open (two
        /// client answers raced past the API's check, or a compaction summarised its use) is
        /// left out: the model API refuses a tool_result without its tool_use.
        private var open: Set<String> = []

        public init() {}

        /// The bytes of every message together.
        public var size: Int { sizes.reduce(0, +) }

        public mutating func add(contentsOf events: some Sequence<StoredEvent>) {
            for event in events { add(event) }
        }

        /// The event types the model sees; only these are decoded.
        static let modelVisible: Set<String> = Set(
            [
                SessionEventType.userMessage, .agentMessage, .agentToolUse, .agentMcpToolUse, .agentCustomToolUse, .agentToolResult,
                .agentMcpToolResult, .userCustomToolResult, .userToolResult, .agentThreadContextCompacted, .agentThreadMessageReceived,
            ].map(\.rawValue))

        public mutating func add(_ event: StoredEvent) {
            guard Self.modelVisible.contains(event.type), let payload = event.payload else { return }
            switch payload {
            case .userMessage(let message):
                append(.user, ContextBuilder.modelBlocks(message.content), at: event.id)
            case .agentMessage(let message):
                append(.assistant, ContextBuilder.modelBlocks(message.content), at: event.id)
            case .agentToolUse(let use):
                openUse(event.id, name: use.name, input: use.input)
            case .agentMCPToolUse(let use):
                // The model knows an MCP tool by its qualified name, the log by server and tool.
                openUse(event.id, name: MCPToolName.qualified(server: use.mcpServerName, tool: use.name), input: use.input)
            case .agentCustomToolUse(let use):
                openUse(event.id, name: use.name, input: use.input)
            case .agentToolResult(let result):
                close(result.toolUseId, result.content, isError: result.isError, at: event.id)
            case .agentMCPToolResult(let result):
                close(result.mcpToolUseId, result.content, isError: result.isError, at: event.id)
            case .userCustomToolResult(let result):
                close(result.customToolUseId, result.content, isError: result.isError, at: event.id)
            case .userToolResult(let result):
                close(result.toolUseId, result.content, isError: result.isError, at: event.id)
            case .agentThreadContextCompacted(let compacted):
                compact(compacted, at: event.id)
            case .agentThreadMessageReceived(let received):
                // The coordinator's task reads as the thread's own user message; a thread's reply
                // says which thread it is from, so the coordinator can answer it.
                if let agent = received.fromAgentName {
                    let text = received.content.compactMap(\.text).joined(separator: "\n")
                    append(.user, [.text("Reply from thread \(received.fromSessionThreadId) (\(agent)):\n" + text)], at: event.id)
                } else {
                    append(.user, ContextBuilder.modelBlocks(received.content), at: event.id)
                }
            default:
                return
            }
        }

        /// The summary in place of every message before the first kept one.
        private mutating func compact(_ compacted: AgentThreadContextCompacted, at id: String) {
            guard let summaryText = compacted.summary else { return }
            let kept = compacted.firstKeptEventId.flatMap { starts.firstIndex(of: $0) } ?? messages.count
            for message in messages[..<kept] {
                for case .toolUse(let useId, _, _) in message.content { open.remove(useId) }
            }
            let summary = ModelMessage(role: .user, content: [.text(ContextCompaction.continuation(summary: summaryText))])
            messages = [summary] + messages[kept...]
            starts = [id] + starts[kept...]
            sizes = [ContextBuilder.size(of: summary)] + sizes[kept...]
            // A kept part starts at an assistant message; were it not to, the two user messages join.
            if messages.count > 1, messages[1].role == .user {
                messages[0].content += messages[1].content
                sizes[0] += sizes[1]
                messages.remove(at: 1)
                starts.remove(at: 1)
                sizes.remove(at: 1)
            }
        }

        private mutating func openUse(_ id: String, name: String, input: [String: JSONValue]) {
            append(.assistant, [.toolUse(id: id, name: name, input: .object(input))], at: id)
            open.insert(id)
        }

        private mutating func close(_ useId: String, _ content: [ContentBlock]?, isError: Bool?, at id: String) {
            guard open.remove(useId) != nil else { return }
            var blocks = (content ?? []).compactMap(\.text).map(ContentBlock.text)
            if blocks.isEmpty { blocks = [.text("(no output)")] }
            append(.user, [.toolResult(toolUseId: useId, content: blocks, isError: isError == true)], at: id)
        }

        private mutating func append(_ role: ModelMessage.Role, _ blocks: [ModelContentBlock], at id: String) {
            guard !blocks.isEmpty else { return }
            let added = blocks.reduce(0) { $0 + ContextBuilder.size(of: $1) }
            if messages.last?.role == role {
                messages[messages.count - 1].content += blocks
                sizes[sizes.count - 1] += added
            } else {
                messages.append(ModelMessage(role: role, content: blocks))
                starts.append(id)
                sizes.append(added + ContextBuilder.messageOverhead)
            }
        }
    }

    /// Bytes of JSON a message costs beyond its blocks (`{"role":"assistant","content":[]}`).
    static let messageOverhead = 36

    public static func size(of message: ModelMessage) -> Int {
        message.content.reduce(messageOverhead) { $0 + size(of: $1) }
    }

    /// A block's size as the Messages API's JSON carries it: its text or input and the keys around it.
    public static func size(of block: ModelContentBlock) -> Int {
        switch block {
        case .text(let text): text.utf8.count + 24
        case .thinking(let text, let signature): text.utf8.count + signature.utf8.count + 48
        case .toolUse(let id, let name, let input): id.utf8.count + name.utf8.count + input.compactJSON.utf8.count + 48
        case .toolResult(let id, let content, _):
            content.reduce(id.utf8.count + 64) { $0 + ($1.text?.utf8.count ?? 0) + 24 }
        }
    }

    /// Tool uses Drover runs itself (`agent.tool_use`, `agent.mcp_tool_use`) with no result: a
    /// crash cut them off. Custom tool uses are left out: the client answers those.
    public static func danglingToolUses(in events: [StoredEvent]) -> [StoredEvent] {
        let waiting = Set(awaitingConfirmation(in: events).map(\.id))
        // A confirmed tool use runs after the session.status_running that follows its
        // confirmation; without one, it has not started and is not a crash victim.
        var confirmedAt: [String: Int64] = [:]
        for event in events where event.kind == .userToolConfirmation {
            if case .userToolConfirmation(let confirmation)? = event.payload { confirmedAt[confirmation.toolUseId] = event.seq }
        }
        let lastRunning = events.last { $0.kind == .sessionStatusRunning }?.seq ?? 0
        return openToolUses(in: events).filter { use in
            if use.kind == .agentCustomToolUse || waiting.contains(use.id) { return false }
            if let confirmed = confirmedAt[use.id], lastRunning < confirmed { return false }
            return true
        }
    }

    /// Tool uses held for `user.tool_confirmation` (evaluated_permission "ask") that no
    /// confirmation has answered yet.
    public static func awaitingConfirmation(in events: [StoredEvent]) -> [StoredEvent] {
        let answered = confirmations(in: events)
        return openToolUses(in: events).filter { use in
            let permission: EvaluatedPermission?
            switch use.payload {
            case .agentToolUse(let tool)?: permission = tool.evaluatedPermission
            case .agentMCPToolUse(let tool)?: permission = tool.evaluatedPermission
            default: return false
            }
            return permission == .ask && answered[use.id] == nil
        }
    }

    /// The confirmations received, by the id of the tool use each answers; the last one wins.
    public static func confirmations(in events: [StoredEvent]) -> [String: UserToolConfirmation] {
        var answers: [String: UserToolConfirmation] = [:]
        for event in events where event.kind == .userToolConfirmation {
            if case .userToolConfirmation(let confirmation)? = event.payload { answers[confirmation.toolUseId] = confirmation }
        }
        return answers
    }

    /// Custom tool uses still waiting for the client's `user.custom_tool_result`.
    public static func pendingCustomToolUses(in events: [StoredEvent]) -> [StoredEvent] {
        openToolUses(in: events).filter { $0.kind == .agentCustomToolUse }
    }

    /// Tool uses of any kind with no result yet, in log order.
    static func openToolUses(in events: [StoredEvent]) -> [StoredEvent] {
        var open: [String: StoredEvent] = [:]
        var order: [String] = []
        for event in events {
            switch event.kind {
            case .agentToolUse, .agentMcpToolUse, .agentCustomToolUse:
                open[event.id] = event
                order.append(event.id)
            case .agentToolResult, .agentMcpToolResult, .userCustomToolResult, .userToolResult:
                if let useId = event.payload?.answeredToolUse { open.removeValue(forKey: useId) }
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
            switch event.kind {
            case .spanModelRequestStart:
                open[event.id] = event
                order.append(event.id)
            case .spanModelRequestEnd:
                if case .spanModelRequestEnd(let end)? = event.payload { open.removeValue(forKey: end.modelRequestStartId) }
            default:
                break
            }
        }
        return order.compactMap { open[$0] }
    }

    /// The blocks the model is sent: text, without the fields the model API does not take.
    /// Images, documents and search results are kept in the log but not sent yet.
    static func modelBlocks(_ blocks: [ContentBlock]) -> [ModelContentBlock] {
        blocks.compactMap(\.text).map(ModelContentBlock.text)
    }
}
