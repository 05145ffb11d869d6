import DroverCore
import Foundation

/// A session's events as a person reads them: who said what, which tool ran with which input,
/// what it returned and how long it took, which model request cost what. `drover sessions
/// replay` prints it and `drover sessions export --format html` draws it, so the two always
/// show the same thing.
public struct SessionTimeline: Sendable {
    public struct Entry: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case user, agent, thinking, tool, toolResult = "tool result", model, status, error, thread, other
        }
        public let seq: Int64
        /// Seconds since the session's first event.
        public let offset: Double
        public let kind: Kind
        /// The one-line summary: a tool's name, a status, a model request's cost.
        public let title: String
        /// Text that may run to many lines: a message, a tool's input or its output.
        public let body: String?
        public let isError: Bool
        /// For a tool result or a model request's end: how long since it started.
        public let seconds: Double?
        /// The event's type on the wire (`agent.tool_use`).
        public let type: String
    }

    public let session: String
    public let status: String
    public let entries: [Entry]
    public let startedAt: Date?
    public let inputTokens: Int
    public let outputTokens: Int
    public let modelRequests: Int
    public let toolCalls: Int
    /// From the first event to the last.
    public let seconds: Double

    public init(session: String, status: String, events: [StoredEvent]) {
        self.session = session
        self.status = status
        var builder = Builder()
        entries = events.map { builder.add($0) }
        startedAt = builder.start
        (inputTokens, outputTokens, modelRequests, toolCalls) = (builder.inputTokens, builder.outputTokens, builder.modelRequests, builder.toolCalls)
        seconds = zip(builder.last, builder.start).map { $0.timeIntervalSince($1) } ?? 0
    }

    /// Turns events into entries one at a time, as they arrive (`drover sessions tail`): a
    /// tool result's duration needs its tool use, seen earlier.
    public struct Builder: Sendable {
        private var toolStarts: [String: (name: String, at: Date)] = [:]
        private var modelStarts: [String: Date] = [:]
        public private(set) var start: Date?
        public private(set) var last: Date?
        public private(set) var inputTokens = 0
        public private(set) var outputTokens = 0
        public private(set) var modelRequests = 0
        public private(set) var toolCalls = 0

        public init() {}

        public mutating func add(_ event: StoredEvent) -> Entry {
            let at = SessionTimeline.date(event.processedAt)
            if start == nil { start = at }
            if let at { last = at }
            let offset = zip(at, start).map { $0.timeIntervalSince($1) } ?? 0
            func entry(_ kind: Entry.Kind, _ title: String, _ body: String? = nil, isError: Bool = false, seconds: Double? = nil) -> Entry {
                Entry(seq: event.seq, offset: offset, kind: kind, title: title, body: body, isError: isError, seconds: seconds, type: event.type)
            }
            func toolUse(_ name: String, _ input: [String: JSONValue]) -> Entry {
                toolCalls += 1
                if let at { toolStarts[event.id] = (name, at) }
                return entry(.tool, name, SessionTimeline.describe(input: input))
            }
            func toolResult(_ useId: String, _ content: [ContentBlock]?, _ isError: Bool?) -> Entry {
                let started = toolStarts.removeValue(forKey: useId)
                let seconds = zip(at, started?.at).map { $0.timeIntervalSince($1) }
                let title = (started?.name ?? "result") + (isError == true ? " failed" : " returned")
                return entry(.toolResult, title, SessionTimeline.text(content ?? []), isError: isError == true, seconds: seconds)
            }
            guard let payload = event.payload else { return entry(.other, event.type, event.json) }
            switch payload {
            case .userMessage(let message): return entry(.user, "message", SessionTimeline.text(message.content))
            case .agentMessage(let message): return entry(.agent, "message", SessionTimeline.text(message.content))
            case .agentThinking: return entry(.thinking, "thinking")
            case .agentToolUse(let use): return toolUse(use.name, use.input)
            case .agentMCPToolUse(let use): return toolUse("\(use.mcpServerName)/\(use.name)", use.input)
            case .agentCustomToolUse(let use): return toolUse(use.name, use.input)
            case .agentToolResult(let result): return toolResult(result.toolUseId, result.content, result.isError)
            case .agentMCPToolResult(let result): return toolResult(result.mcpToolUseId, result.content, result.isError)
            case .userCustomToolResult(let result): return toolResult(result.customToolUseId, result.content, result.isError)
            case .userToolResult(let result): return toolResult(result.toolUseId, result.content, result.isError)
            case .spanModelRequestStart:
                modelRequests += 1
                if let at { modelStarts[event.id] = at }
                return entry(.model, "request started")
            case .spanModelRequestEnd(let end):
                inputTokens += end.modelUsage.inputTokens
                outputTokens += end.modelUsage.outputTokens
                let seconds = zip(at, modelStarts.removeValue(forKey: end.modelRequestStartId)).map { $0.timeIntervalSince($1) }
                let took = seconds.map { String(format: "took %.2fs, ", $0) } ?? ""
                let tokens = "in \(end.modelUsage.inputTokens) / out \(end.modelUsage.outputTokens) tokens"
                return entry(
                    .model, "request \(took)\(tokens)\(end.isError == true ? ", failed" : "")", isError: end.isError == true, seconds: seconds)
            case .sessionStatusIdle(let idle): return entry(.status, "idle (\(idle.stopReason.type))")
            case .sessionStatusRunning, .sessionStatusRescheduled, .sessionStatusTerminated:
                return entry(.status, String(event.type.dropFirst("session.status_".count)))
            case .sessionError(let error): return entry(.error, "\(error.error.type)", error.error.message, isError: true)
            case .userInterrupt: return entry(.user, "interrupt")
            case .userToolConfirmation(let confirmation): return entry(.user, "tool confirmation: \(confirmation.result.rawValue)")
            case .agentThreadContextCompacted(let compacted):
                return entry(.agent, "context compacted", compacted.summary ?? "(no summary recorded)")
            case .sessionThreadCreated(let created):
                return entry(.thread, "thread started: \(created.agentName)", created.sessionThreadId)
            case .agentThreadMessageSent(let sent):
                return entry(.thread, "message to \(sent.toAgentName ?? "the coordinator")", SessionTimeline.text(sent.content))
            case .agentThreadMessageReceived(let received):
                return entry(.thread, "message from \(received.fromAgentName ?? "the coordinator")", SessionTimeline.text(received.content))
            case .sessionThreadStatusRunning(let status):
                return entry(.status, "thread \(status.agentName) running", status.sessionThreadId)
            case .sessionThreadStatusIdle(let status):
                return entry(.status, "thread \(status.agentName) idle (\(status.stopReason?.type ?? "end_turn"))", status.sessionThreadId)
            case .sessionThreadStatusTerminated(let status):
                return entry(.status, "thread \(status.agentName) archived", status.sessionThreadId)
            default: return entry(.other, event.type, JSONValue.object(payload.fields).compactJSON)
            }
        }
    }

    /// A tool's input as a person reads it: a lone command or path as itself, the rest as
    /// `key: value` lines, so that a script written by `write` keeps its lines.
    static func describe(input: [String: JSONValue]) -> String {
        if input.count == 1, let (_, value) = input.first, case .string(let text) = value { return text }
        return input.keys.sorted().map { key in
            if case .string(let text)? = input[key] {
                return text.contains("\n") ? "\(key):\n\(text)" : "\(key): \(text)"
            }
            return "\(key): \(input[key]!.compactJSON)"
        }.joined(separator: "\n")
    }

    static func text(_ content: [ContentBlock]) -> String {
        content.map { $0.text ?? "[\($0.type)]" }.joined(separator: "\n")
    }

    static func date(_ text: String) -> Date? {
        // Foundation parses at most millisecond fractions reliably; the log writes microseconds.
        guard text.count >= 23 else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: String(text.prefix(23)) + "Z")
    }
}

private func zip<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
