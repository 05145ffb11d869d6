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
///   final: "Test output for {{user_text}}:\n{{result_1}}"
/// ```
///
/// The step is the number of tool results already in the conversation, leaving out a call a
/// crash cut off (its error result says so), which is taken again as a model would; placeholders are
/// `{{user_text}}` (the first user message), `{{result_N}}` (the Nth tool result, from 1) and
/// `{{last_result}}`. Inputs take the same placeholders. `ttft_ms` delays every answer.
public struct Playbook: Sendable, Equatable {
    public struct Step: Sendable, Equatable {
        public var tool: String
        public var input: JSONValue
    }

    public var steps: [Step]
    public var final: String
    /// Milliseconds before each answer starts: a realistic model's thinking time, for
    /// benchmarks and for tests that need turns to take a while.
    public var ttftMilliseconds = 0

    static func parse(_ value: Any, path: String) throws -> Playbook {
        guard let map = value as? [String: Any] else {
            throw ModelScript.ScriptError(path: path, message: "must be a mapping with `steps` and `final`")
        }
        guard let final = map["final"] as? String else {
            throw ModelScript.ScriptError(path: "\(path).final", message: "a template string is required")
        }
        let rawSteps = map["steps"] as? [Any] ?? []
        let steps = try rawSteps.enumerated().map { index, item -> Step in
            guard let step = item as? [String: Any], let tool = step["tool"] as? String else {
                throw ModelScript.ScriptError(path: "\(path).steps[\(index)]", message: "needs `tool` (a name) and `input` (a mapping)")
            }
            return Step(tool: tool, input: try ModelScript.json(step["input"] ?? [String: Any](), "\(path).steps[\(index)].input"))
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

    /// Fills `{{...}}` placeholders.
    static func fill(_ template: String, userText: String, results: [String]) -> String {
        var text = template.replacingOccurrences(of: "{{user_text}}", with: userText)
        text = text.replacingOccurrences(of: "{{last_result}}", with: results.last ?? "")
        for (index, result) in results.enumerated() {
            text = text.replacingOccurrences(of: "{{result_\(index + 1)}}", with: result)
        }
        return text
    }

    static func fill(_ value: JSONValue, userText: String, results: [String]) -> JSONValue {
        switch value {
        case .string(let text): .string(fill(text, userText: userText, results: results))
        case .array(let items): .array(items.map { fill($0, userText: userText, results: results) })
        case .object(let fields): .object(fields.mapValues { fill($0, userText: userText, results: results) })
        default: value
        }
    }
}
