import DroverBrain
import DroverCore
import Foundation

/// Renders session events as a person reads them: who said what, which tool ran with which
/// input, what it returned, and how long each step took.
struct TimelineRenderer {
    private var start: Date?
    private var toolStarts: [String: (name: String, at: Date)] = [:]
    private var modelStarts: [String: Date] = [:]
    let width: Int

    init(width: Int = 100) {
        self.width = width
    }

    mutating func render(_ event: StoredEvent) -> String {
        let at = Self.date(event.processedAt)
        if start == nil { start = at }
        let offset = at.flatMap { at in start.map { at.timeIntervalSince($0) } } ?? 0
        let stamp = String(format: "%8.3fs", offset)
        func line(_ who: String, _ text: String) -> String {
            "\(stamp)  #\(String(event.seq).padding(toLength: 4, withPad: " ", startingAt: 0)) \(who.padding(toLength: 13, withPad: " ", startingAt: 0)) \(text)"
        }
        guard let payload = event.payload else { return line(event.type, Self.clip(event.json, width)) }
        switch payload {
        case .userMessage(let message):
            return line("user", Self.clip(Self.text(message.content), width))
        case .agentMessage(let message):
            return line("agent", Self.clip(Self.text(message.content), width))
        case .agentThinking:
            return line("thinking", "…")
        case .agentToolUse(let use):
            return toolUse(event, at: at, kind: "tool", name: use.name, input: use.input, line: line)
        case .agentMCPToolUse(let use):
            return toolUse(event, at: at, kind: "mcp tool", name: use.name, input: use.input, line: line)
        case .agentCustomToolUse(let use):
            return toolUse(event, at: at, kind: "custom tool", name: use.name, input: use.input, line: line)
        case .agentToolResult(let result):
            return toolResult(answering: result.toolUseId, at: at, content: result.content, isError: result.isError, line: line)
        case .agentMCPToolResult(let result):
            return toolResult(answering: result.mcpToolUseId, at: at, content: result.content, isError: result.isError, line: line)
        case .userCustomToolResult(let result):
            return toolResult(answering: result.customToolUseId, at: at, content: result.content, isError: result.isError, line: line)
        case .spanModelRequestStart:
            if let at { modelStarts[event.id] = at }
            return line("model", "request started")
        case .spanModelRequestEnd(let end):
            let took =
                zip2(modelStarts.removeValue(forKey: end.modelRequestStartId), at).map { String(format: "%.2fs", $1.timeIntervalSince($0)) } ?? "?"
            let tokens = "in \(end.modelUsage.inputTokens) / out \(end.modelUsage.outputTokens) tokens"
            return line("model", "request took \(took), \(tokens)\(end.isError == true ? ", failed" : "")")
        case .sessionStatusIdle(let idle):
            return line("status", "idle (\(idle.stopReason.type))")
        case .sessionStatusRunning, .sessionStatusRescheduled, .sessionStatusTerminated:
            return line("status", String(event.type.dropFirst("session.status_".count)))
        case .sessionError(let error):
            return line("error", "\(error.error.type): \(error.error.message)")
        case .userInterrupt:
            return line("user", "interrupt")
        case .userToolConfirmation(let confirmation):
            return line("user", "tool confirmation: \(confirmation.result.rawValue)")
        default:
            return line(event.type, Self.clip(Self.compact(.object(payload.fields)), width))
        }
    }

    private mutating func toolUse(
        _ event: StoredEvent, at: Date?, kind: String, name: String, input: [String: JSONValue], line: (String, String) -> String
    ) -> String {
        if let at { toolStarts[event.id] = (name, at) }
        return line(kind, "\(name) \(Self.clip(Self.compact(.object(input)), width - name.count - 1))")
    }

    private mutating func toolResult(
        answering useId: String, at: Date?, content: [ContentBlock]?, isError: Bool?, line: (String, String) -> String
    ) -> String {
        let started = toolStarts.removeValue(forKey: useId)
        let took = zip2(started?.at, at).map { String(format: " (%.2fs)", $1.timeIntervalSince($0)) } ?? ""
        let label = (started?.name ?? "result") + (isError == true ? " failed" : " returned") + took
        return line("tool result", "\(label): \(Self.clip(Self.text(content ?? []), width - label.count - 2))")
    }

    static func text(_ content: [ContentBlock]) -> String {
        content.map { $0.text ?? "[\($0.type)]" }.joined(separator: " ")
    }

    static func compact(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        if case .string(let text) = value { return text }
        return value.compactJSON
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: "⏎ ")
        return flat.count > max(limit, 10) ? String(flat.prefix(max(limit, 10) - 1)) + "…" : flat
    }

    static func date(_ text: String) -> Date? {
        // Foundation parses at most millisecond fractions reliably; the log writes microseconds.
        guard text.count >= 23 else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: String(text.prefix(23)) + "Z")
    }
}

private func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
