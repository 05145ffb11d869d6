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
        let fields = event.value.objectValue ?? [:]
        let at = Self.date(event.processedAt)
        if start == nil { start = at }
        let offset = at.flatMap { at in start.map { at.timeIntervalSince($0) } } ?? 0
        let stamp = String(format: "%8.3fs", offset)
        func line(_ who: String, _ text: String) -> String {
            "\(stamp)  #\(String(event.seq).padding(toLength: 4, withPad: " ", startingAt: 0)) \(who.padding(toLength: 13, withPad: " ", startingAt: 0)) \(text)"
        }
        switch event.type {
        case "user.message":
            return line("user", Self.clip(Self.text(fields["content"]), width))
        case "agent.message":
            return line("agent", Self.clip(Self.text(fields["content"]), width))
        case "agent.thinking":
            return line("thinking", "…")
        case "agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use":
            let name = fields["name"]?.stringValue ?? "?"
            if let at { toolStarts[event.id] = (name, at) }
            let kind = event.type == "agent.tool_use" ? "tool" : (event.type == "agent.mcp_tool_use" ? "mcp tool" : "custom tool")
            return line(kind, "\(name) \(Self.clip(Self.compact(fields["input"]), width - name.count - 1))")
        case "agent.tool_result", "agent.mcp_tool_result", "user.custom_tool_result":
            let useId = ContextBuilder.answeredToolUse(fields) ?? ""
            let started = toolStarts.removeValue(forKey: useId)
            let took = zip2(started?.at, at).map { String(format: " (%.2fs)", $1.timeIntervalSince($0)) } ?? ""
            let failed = fields["is_error"] == .bool(true)
            let label = (started?.name ?? "result") + (failed ? " failed" : " returned") + took
            return line("tool result", "\(label): \(Self.clip(Self.text(fields["content"]), width - label.count - 2))")
        case "span.model_request_start":
            if let at { modelStarts[event.id] = at }
            return line("model", "request started")
        case "span.model_request_end":
            let startId = fields["model_request_start_id"]?.stringValue ?? ""
            let took = zip2(modelStarts.removeValue(forKey: startId), at).map { String(format: "%.2fs", $1.timeIntervalSince($0)) } ?? "?"
            let usage = fields["model_usage"]?.objectValue ?? [:]
            let tokens = "in \(Self.compact(usage["input_tokens"])) / out \(Self.compact(usage["output_tokens"])) tokens"
            return line("model", "request took \(took), \(tokens)\(fields["is_error"] == .bool(true) ? ", failed" : "")")
        case "session.status_idle":
            let reason = fields["stop_reason"]?.objectValue?["type"]?.stringValue ?? "?"
            return line("status", "idle (\(reason))")
        case "session.status_running", "session.status_rescheduled", "session.status_terminated":
            return line("status", String(event.type.dropFirst("session.status_".count)))
        case "session.error":
            let error = fields["error"]?.objectValue ?? [:]
            return line("error", "\(error["type"]?.stringValue ?? "error"): \(error["message"]?.stringValue ?? "")")
        case "user.interrupt":
            return line("user", "interrupt")
        case "user.tool_confirmation":
            return line("user", "tool confirmation: \(fields["result"]?.stringValue ?? "?")")
        default:
            return line(event.type, Self.clip(Self.compact(.object(fields.filter { !["id", "type", "processed_at"].contains($0.key) })), width))
        }
    }

    static func text(_ content: JSONValue?) -> String {
        guard case .array(let blocks)? = content else { return compact(content) }
        return blocks.map { block in
            let fields = block.objectValue ?? [:]
            if let text = fields["text"]?.stringValue { return text }
            return "[\(fields["type"]?.stringValue ?? "block")]"
        }.joined(separator: " ")
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
