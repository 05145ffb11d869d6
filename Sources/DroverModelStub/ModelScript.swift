import DroverCore
import Foundation
import Yams

/// What the scripted model answers, turn by turn (docs/scripted-model.md is the format). A
/// conversation's turn is the number of assistant messages already in the request, so
/// concurrent sessions each get their own place in the script without the server keeping any
/// state per session.
///
/// ```yaml
/// turns:
///   - text: "Let me look."
///     tool_use: {name: echo, input: {text: hi}}
///     ttft_ms: 300            # delay before the first content byte
///     tokens_per_second: 200  # pace of the deltas
///   - fault: {status: 529, times: 2}   # answer 529 twice, then the content below
///     text: "Done."
///   - drop_after_bytes: 400   # close the connection mid-stream
///     text: "never finished"
/// ```
public struct ModelScript: Sendable, Equatable {
    public struct Turn: Sendable, Equatable {
        public var thinking: String?
        public var text: String?
        public var toolUses: [(name: String, input: JSONValue)]
        public var ttftMilliseconds: Int = 0
        public var tokensPerSecond: Double = 0
        public var fault: Fault?
        public var dropAfterBytes: Int?

        public static func == (lhs: Turn, rhs: Turn) -> Bool {
            lhs.thinking == rhs.thinking && lhs.text == rhs.text && lhs.ttftMilliseconds == rhs.ttftMilliseconds
                && lhs.toolUses.map(\.name) == rhs.toolUses.map(\.name) && lhs.toolUses.map(\.input) == rhs.toolUses.map(\.input)
                && lhs.fault == rhs.fault && lhs.dropAfterBytes == rhs.dropAfterBytes && lhs.tokensPerSecond == rhs.tokensPerSecond
        }

        public init(
            thinking: String? = nil, text: String? = nil, toolUses: [(name: String, input: JSONValue)] = [],
            ttftMilliseconds: Int = 0, tokensPerSecond: Double = 0, fault: Fault? = nil, dropAfterBytes: Int? = nil
        ) {
            self.thinking = thinking
            self.text = text
            self.toolUses = toolUses
            self.ttftMilliseconds = ttftMilliseconds
            self.tokensPerSecond = tokensPerSecond
            self.fault = fault
            self.dropAfterBytes = dropAfterBytes
        }
    }

    public struct Fault: Sendable, Equatable {
        /// 429, 500, 503 or 529.
        public var status: Int
        /// How many requests for this turn get the fault before it answers normally; nil: always.
        public var times: Int?
        public var retryAfterSeconds: Double?

        public init(status: Int, times: Int? = nil, retryAfterSeconds: Double? = nil) {
            self.status = status
            self.times = times
            self.retryAfterSeconds = retryAfterSeconds
        }
    }

    public var turns: [Turn]
    /// Turns in a playbook's place: tool calls derived from the conversation.
    public var playbook: Playbook?
    /// How the model counts a request's input tokens: its body's bytes over this, rounded up.
    public var bytesPerToken = 4
    /// The most input tokens a request may carry; one with more is refused with a 400, as the
    /// Messages API refuses a prompt that is too long. Nil: no limit.
    public var contextWindow: Int?
    /// Milliseconds before the answer to a compaction request (`ContextCompaction.prompt`) starts.
    public var compactionTTFTMilliseconds = 0
    /// Scripts for particular agents, each chosen when the request's system prompt contains its
    /// marker (the first that matches): a coordinator and its threads, one server.
    public var agents: [(marker: String, script: ModelScript)] = []

    public static func == (lhs: ModelScript, rhs: ModelScript) -> Bool {
        lhs.turns == rhs.turns && lhs.playbook == rhs.playbook && lhs.bytesPerToken == rhs.bytesPerToken && lhs.contextWindow == rhs.contextWindow
            && lhs.compactionTTFTMilliseconds == rhs.compactionTTFTMilliseconds && lhs.agents.map(\.marker) == rhs.agents.map(\.marker)
            && lhs.agents.map(\.script) == rhs.agents.map(\.script)
    }

    /// The script for a request whose system prompt is `system`.
    public func forSystem(_ system: String?) -> ModelScript {
        guard let system, let chosen = agents.first(where: { system.contains($0.marker) }) else { return self }
        var script = chosen.script
        script.bytesPerToken = bytesPerToken
        script.contextWindow = contextWindow
        script.compactionTTFTMilliseconds = compactionTTFTMilliseconds
        return script
    }

    public init(turns: [Turn] = [], playbook: Playbook? = nil) {
        self.turns = turns
        self.playbook = playbook
    }

    /// The input tokens of a request body of `bytes` bytes, as this model counts them.
    public func inputTokens(bytes: Int) -> Int {
        max(1, (bytes + bytesPerToken - 1) / bytesPerToken)
    }

    public struct ScriptError: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let message: String
        public var description: String { "\(path): \(message)" }
    }

    public static func load(path: String) throws -> ModelScript {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ScriptError(path: path, message: "cannot read the file: \(error.localizedDescription)")
        }
        let script = try parse(yaml: text, file: path)
        try script.checkPlaceholders(fields: [], file: path, text: text)
        return script
    }

    /// Refuses a playbook placeholder that names neither a built-in nor one of `fields`, with
    /// the file, the line (found in `text`, from line `from`) and what exists.
    public func checkPlaceholders(fields: Set<String>, file: String, text: String?, from line: Int = 1) throws(ScriptError) {
        guard let problem = playbook?.placeholderProblem(fields: fields) else { return }
        let at = text.flatMap { Template.line(of: problem.use.name, in: $0, from: line) }.map { ":\($0)" } ?? ""
        throw ScriptError(path: "\(file)\(at): playbook.\(problem.use.field)", message: "\(problem.message). Fix: \(problem.fix)")
    }

    public static func parse(yaml: String, file: String = "script") throws -> ModelScript {
        let root: Any?
        do {
            root = try Yams.load(yaml: yaml)
        } catch {
            throw ScriptError(path: file, message: "not valid YAML: \(error). Fix: check indentation and quoting")
        }
        guard let top = root as? [String: Any] else {
            throw ScriptError(path: file, message: "the top level must be a mapping with `turns:` or `playbook:`")
        }
        let topKeys = ["turns", "playbook", "bytes_per_token", "context_window", "compaction", "agents"]
        for key in top.keys where !topKeys.contains(key) {
            throw ScriptError(path: "\(file): \(key)", message: "unknown key; a script takes \(topKeys.joined(separator: ", "))")
        }
        var script = ModelScript()
        if let raw = top["bytes_per_token"] {
            guard let value = raw as? Int, (1...64).contains(value) else {
                throw ScriptError(path: "\(file): bytes_per_token", message: "must be a whole number from 1 to 64 (default 4)")
            }
            script.bytesPerToken = value
        }
        if let raw = top["context_window"] {
            guard let value = raw as? Int, value >= 100 else {
                throw ScriptError(path: "\(file): context_window", message: "must be a whole number of tokens, 100 or more")
            }
            script.contextWindow = value
        }
        if let raw = top["compaction"] {
            guard let map = raw as? [String: Any], map.keys.allSatisfy({ $0 == "ttft_ms" }), let ttft = map["ttft_ms"] as? Int, ttft >= 0 else {
                throw ScriptError(path: "\(file): compaction", message: "takes `ttft_ms`: milliseconds before a summary starts, 0 or more")
            }
            script.compactionTTFTMilliseconds = ttft
        }
        if let playbook = top["playbook"] {
            script.playbook = try Playbook.parse(playbook, path: "\(file): playbook")
        }
        if let raw = top["turns"] {
            guard let list = raw as? [Any] else { throw ScriptError(path: "\(file): turns", message: "must be a list of turns") }
            script.turns = try list.enumerated().map { index, item in try parseTurn(item, path: "\(file): turns[\(index)]") }
        }
        if let raw = top["agents"] {
            guard let map = raw as? [String: Any], !map.isEmpty else {
                throw ScriptError(
                    path: "\(file): agents", message: "must map a marker in an agent's system prompt to its script (turns: or playbook:)")
            }
            for marker in map.keys.sorted() {
                guard !marker.isEmpty, let body = map[marker] as? [String: Any] else {
                    throw ScriptError(path: "\(file): agents.\(marker)", message: "must be a mapping with `turns:` or `playbook:`")
                }
                for key in body.keys where key != "turns" && key != "playbook" {
                    throw ScriptError(path: "\(file): agents.\(marker).\(key)", message: "unknown key; an agent's script takes turns and playbook")
                }
                let text = try Yams.dump(object: body)
                script.agents.append((marker, try parse(yaml: text, file: "\(file): agents.\(marker)")))
            }
        }
        if script.turns.isEmpty && script.playbook == nil && script.agents.isEmpty {
            throw ScriptError(path: file, message: "no turns and no playbook. Fix: add `turns:` with at least one turn")
        }
        return script
    }

    static let turnKeys: Set = ["thinking", "text", "tool_use", "tool_uses", "ttft_ms", "tokens_per_second", "fault", "drop_after_bytes"]

    static func parseTurn(_ item: Any, path: String) throws -> Turn {
        guard let fields = item as? [String: Any] else { throw ScriptError(path: path, message: "a turn must be a mapping") }
        for key in fields.keys where !turnKeys.contains(key) {
            throw ScriptError(path: "\(path).\(key)", message: "unknown key; a turn takes \(turnKeys.sorted().joined(separator: ", "))")
        }
        var turn = Turn()
        turn.thinking = try string(fields["thinking"], "\(path).thinking")
        turn.text = try string(fields["text"], "\(path).text")
        var uses: [Any] = []
        if let one = fields["tool_use"] { uses.append(one) }
        if let many = fields["tool_uses"] {
            guard let list = many as? [Any] else { throw ScriptError(path: "\(path).tool_uses", message: "must be a list") }
            uses += list
        }
        turn.toolUses = try uses.enumerated().map { index, use in
            let usePath = "\(path).tool_use[\(index)]"
            guard let map = use as? [String: Any], let name = map["name"] as? String, !name.isEmpty else {
                throw ScriptError(path: usePath, message: "needs a `name` (string) and an `input` (mapping)")
            }
            return (name, try json(map["input"] ?? [String: Any](), "\(usePath).input"))
        }
        if let ttft = fields["ttft_ms"] {
            guard let value = ttft as? Int, value >= 0 else {
                throw ScriptError(path: "\(path).ttft_ms", message: "must be a whole number of milliseconds, 0 or more")
            }
            turn.ttftMilliseconds = value
        }
        if let pace = fields["tokens_per_second"] {
            guard let value = (pace as? Double) ?? (pace as? Int).map(Double.init), value > 0 else {
                throw ScriptError(path: "\(path).tokens_per_second", message: "must be a number above 0")
            }
            turn.tokensPerSecond = value
        }
        if let fault = fields["fault"] {
            guard let map = fault as? [String: Any], let status = map["status"] as? Int, [429, 500, 502, 503, 529].contains(status) else {
                throw ScriptError(path: "\(path).fault", message: "needs `status`: one of 429, 500, 502, 503, 529")
            }
            turn.fault = Fault(
                status: status, times: map["times"] as? Int,
                retryAfterSeconds: (map["retry_after"] as? Double) ?? (map["retry_after"] as? Int).map(Double.init))
        }
        if let drop = fields["drop_after_bytes"] {
            guard let value = drop as? Int, value >= 0 else {
                throw ScriptError(path: "\(path).drop_after_bytes", message: "must be a whole number of bytes")
            }
            turn.dropAfterBytes = value
        }
        if turn.text == nil && turn.toolUses.isEmpty && turn.thinking == nil && turn.fault == nil {
            throw ScriptError(path: path, message: "a turn needs `text`, `tool_use` or `fault`")
        }
        return turn
    }

    static func string(_ value: Any?, _ path: String) throws -> String? {
        guard let value else { return nil }
        if let text = value as? String { return text }
        if value is Int || value is Double || value is Bool { return "\(value)" }
        throw ScriptError(path: path, message: "must be a string")
    }

    static func json(_ value: Any, _ path: String) throws -> JSONValue {
        switch value {
        case let text as String: return .string(text)
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .number(Double(number))
        case let number as Double: return .number(number)
        case let list as [Any]: return .array(try list.enumerated().map { try json($1, "\(path)[\($0)]") })
        case let map as [String: Any]:
            var object: [String: JSONValue] = [:]
            for (key, item) in map { object[key] = try json(item, "\(path).\(key)") }
            return .object(object)
        case is NSNull: return .null
        default: throw ScriptError(path: path, message: "unsupported value \(value)")
        }
    }
}
