import DroverCore
import Foundation

/// Offline work with no model key: the playbook names the tool calls to make, then writes a
/// final message filled in from the *real* tool results found in the conversation.
///
/// ```yaml
/// playbook:
///   steps:
///     - tool: bash
///       input: {command: "cd /workspace && python -m pytest -q 2>&1 | tail -5"}
///     - tool: read
///       when: "{{named_file}}"          # taken only when the message names a file
///       input: {file_path: "/workspace/{{named_file}}"}
///   final: "Test output for {{name}}:\n{{result_1}}"
/// ```
///
/// A playbook answers the latest user message: the step is the number of tool results since
/// that message, leaving out a call a crash cut off (its error result says so), which is taken
/// again as a model would. `docs/scripted-model.md` lists the placeholders.
public struct Playbook: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var tool: String
        public var input: JSONValue
        /// A template: the step is taken only when it fills in to something other than blanks.
        public var when: String?
        /// A coordinator's wait: the model writes this text and ends its turn, and the step's
        /// result is the threads' replies that wake it (docs/threads.md). `tool` is empty.
        public var wait: String?
    }

    public var steps: [Step]
    public var final: String
    /// Milliseconds before each answer starts: a realistic model's thinking time, for
    /// benchmarks and for tests that need turns to take a while.
    public var ttftMilliseconds = 0

    /// The placeholders every playbook has, whatever it runs for, besides `result_1` up to
    /// `result_<number of steps>`.
    public static let builtInPlaceholders = ["user_text", "named_file", "results", "last_result"]

    static func parse(_ value: Any, path: String) throws -> Playbook {
        guard let map = value as? [String: Any] else {
            throw ModelScript.ScriptError(path: path, message: "must be a mapping with `steps` and `final`")
        }
        for key in map.keys where !["steps", "final", "ttft_ms"].contains(key) {
            throw ModelScript.ScriptError(path: "\(path).\(key)", message: "unknown key; a playbook takes steps, final and ttft_ms")
        }
        guard let final = map["final"] as? String else {
            throw ModelScript.ScriptError(path: "\(path).final", message: "a template string is required")
        }
        guard map["steps"] == nil || map["steps"] is [Any] else {
            throw ModelScript.ScriptError(path: "\(path).steps", message: "must be a list of {tool, input} steps")
        }
        let rawSteps = map["steps"] as? [Any] ?? []
        let steps = try rawSteps.enumerated().map { index, item -> Step in
            let stepPath = "\(path).steps[\(index)]"
            if let step = item as? [String: Any], let wait = step["wait"] {
                guard step.count == 1, let text = wait as? String, !text.isEmpty else {
                    throw ModelScript.ScriptError(
                        path: "\(stepPath).wait", message: "a wait step is `wait: TEXT` alone: what the coordinator says while its threads work")
                }
                return Step(tool: "", input: .object([:]), when: nil, wait: text)
            }
            guard let step = item as? [String: Any], let tool = step["tool"] as? String, !tool.isEmpty else {
                throw ModelScript.ScriptError(path: stepPath, message: "needs `tool` (a name) and `input` (a mapping)")
            }
            for key in step.keys where !["tool", "input", "when"].contains(key) {
                throw ModelScript.ScriptError(path: "\(stepPath).\(key)", message: "unknown key; a step takes tool, input and when")
            }
            let when = try ModelScript.string(step["when"], "\(stepPath).when")
            return Step(tool: tool, input: try ModelScript.json(step["input"] ?? [String: Any](), "\(stepPath).input"), when: when, wait: nil)
        }
        var playbook = Playbook(steps: steps, final: final)
        if let ttft = map["ttft_ms"] {
            guard let value = ttft as? Int, value >= 0 else {
                throw ModelScript.ScriptError(path: "\(path).ttft_ms", message: "must be a whole number of milliseconds, 0 or more")
            }
            playbook.ttftMilliseconds = value
        }
        return playbook
    }

    /// A placeholder as written, and the template it is in (`steps[0].input.command`, `final`).
    public struct Use: Sendable, Equatable {
        public let name: String
        public let field: String
    }

    /// Every placeholder the playbook uses, steps first, in order.
    public var uses: [Use] {
        var found: [Use] = []
        func scan(_ value: JSONValue, _ field: String) {
            switch value {
            case .string(let text): found += Template.names(in: text).map { Use(name: $0, field: field) }
            case .array(let items): for (index, item) in items.enumerated() { scan(item, "\(field)[\(index)]") }
            case .object(let fields): for key in fields.keys.sorted() { scan(fields[key]!, "\(field).\(key)") }
            default: break
            }
        }
        for (index, step) in steps.enumerated() {
            if let when = step.when { scan(.string(when), "steps[\(index)].when") }
            scan(step.input, "steps[\(index)].input")
        }
        scan(.string(final), "final")
        return found
    }

    /// The first placeholder that is neither built in nor one of `fields`, if any.
    public func unknownPlaceholder(fields: Set<String>) -> Use? {
        uses.first { use in
            if fields.contains(use.name) || Self.builtInPlaceholders.contains(use.name) { return false }
            if use.name.hasPrefix("result_"), let number = Int(use.name.dropFirst("result_".count)), (1...max(1, steps.count)).contains(number) {
                return false
            }
            return true
        }
    }

    /// Why the first placeholder that is neither built in nor one of `fields` cannot be
    /// filled in, and the fix; nil when every placeholder can.
    public func placeholderProblem(fields: Set<String>) -> (use: Use, message: String, fix: String)? {
        guard let use = unknownPlaceholder(fields: fields) else { return nil }
        let results = steps.count > 1 ? "result_1 to result_\(steps.count)" : "result_1"
        let builtIns = Self.builtInPlaceholders.joined(separator: ", ") + " and " + results
        let items =
            fields.isEmpty
            ? "there are no item fields here (only a job's playbook has them)"
            : "the item's fields are \(fields.sorted().joined(separator: ", "))"
        return (
            use, "{{\(use.name)}} names no placeholder: the built-ins are \(builtIns), and \(items)",
            "use one of those (see docs/scripted-model.md)"
        )
    }

    /// What the placeholders are filled in from.
    public struct Context: Sendable {
        /// The latest user message's text.
        public var userText: String
        /// The item's fields, for a playbook that runs a job.
        public var fields: [String: String]
        /// The tool calls answered since that message, each with its result.
        public var results: [(call: String, text: String)]

        public init(userText: String, fields: [String: String] = [:], results: [(call: String, text: String)] = []) {
            self.userText = userText
            self.fields = fields
            self.results = results
        }

        /// The first workspace-relative file name the message mentions (`ana.py`,
        /// `src/main.py`, `/workspace/notes.md`), or "".
        public var namedFile: String { Playbook.namedFile(in: userText) }

        func value(of name: String) -> String? {
            switch name {
            case "user_text": return userText
            case "named_file": return namedFile
            case "last_result": return results.last?.text ?? ""
            case "results":
                // Each result ends where its text does: tool output's last newline would add a blank line.
                return results.map { "\($0.call)\n\($0.text.replacing(/\s+$/, with: ""))" }.joined(separator: "\n\n")
            default:
                if name.hasPrefix("result_"), let number = Int(name.dropFirst("result_".count)), number >= 1 {
                    return number <= results.count ? results[number - 1].text : ""
                }
                return fields[name]
            }
        }
    }

    /// The steps this conversation takes: those whose `when` fills in to something.
    public func steps(in context: Context) -> [Step] {
        steps.filter { step in
            guard let when = step.when else { return true }
            return !Self.fill(when, context).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
    }

    /// Fills `{{...}}` placeholders in one pass, so a tool result that itself holds `{{...}}`
    /// is never filled in again. A placeholder with no value stays as written.
    public static func fill(_ template: String, _ context: Context) -> String {
        Template.render(template) { context.value(of: $0) }
    }

    static func fill(_ value: JSONValue, _ context: Context) -> JSONValue {
        switch value {
        case .string(let text): .string(fill(text, context))
        case .array(let items): .array(items.map { fill($0, context) })
        case .object(let fields): .object(fields.mapValues { fill($0, context) })
        default: value
        }
    }

    /// See `Context.namedFile`.
    static func namedFile(in text: String) -> String {
        for match in text.matches(of: namedFilePattern) {
            var path = String(match.output)
            if path.hasPrefix("/workspace/") { path.removeFirst("/workspace/".count) }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            if path.hasPrefix("/") || parts.contains("..") || parts.contains("") { continue }
            // "e.g" and "i.e" match too, and are no file.
            if path.count == 3, path.dropFirst().first == "." { continue }
            return path
        }
        return ""
    }

    nonisolated(unsafe) static let namedFilePattern =
        /(?:\/workspace\/)?[A-Za-z0-9_][A-Za-z0-9_\-\/]*(?:\.[A-Za-z0-9_\-]+)*\.[A-Za-z][A-Za-z0-9]{0,9}\b/
}
