import DroverCore
import Foundation

/// When a thread's context is compacted: each model's context window, the part of it kept free,
/// and how many compactions in a row end a turn. Read by every worker from its environment.
public struct ContextPolicy: Sendable, Equatable {
    /// Context windows in tokens by model id; `defaultWindow` for the rest.
    public var windows: [String: Int]
    public var defaultWindow: Int
    /// Percent of the window left free below it: compaction starts when a request's input plus
    /// its `max_tokens` would pass `window - margin`.
    public var marginPercent: Int
    /// Compactions in a row, with no message or tool call from the model between them, after
    /// which a turn stops with `compaction_limit_reached_error` (as the SDK defines it).
    public var limit: Int
    /// Off: requests are sent whole, and a model refuses the ones past its window.
    public var enabled: Bool

    public static let defaultWindowTokens = 200_000

    public init(
        windows: [String: Int] = [:], defaultWindow: Int = Self.defaultWindowTokens, marginPercent: Int = 10, limit: Int = 3, enabled: Bool = true
    ) {
        self.windows = windows
        self.defaultWindow = defaultWindow
        self.marginPercent = marginPercent
        self.limit = limit
        self.enabled = enabled
    }

    public func window(for model: String) -> Int {
        windows[model] ?? defaultWindow
    }

    /// The most input tokens a request for `model` that asks for `maxTokens` may carry.
    public func inputBudget(model: String, maxTokens: Int) -> Int {
        inputBudget(window: window(for: model), maxTokens: maxTokens)
    }

    /// The same for a window known otherwise (a model said what its window is).
    public func inputBudget(window: Int, maxTokens: Int) -> Int {
        window - window * marginPercent / 100 - maxTokens
    }

    /// `DROVER_CONTEXT_WINDOW`: tokens for every model (`200000`), or per model with a default
    /// (`claude-opus-4-1=1000000,*=200000`). `DROVER_COMPACTION_MARGIN` (percent),
    /// `DROVER_COMPACTION_LIMIT`, and `DROVER_COMPACTION=off`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(FieldError) -> ContextPolicy {
        var policy = ContextPolicy()
        func value(_ key: String) -> String? {
            guard let text = environment[key]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        func tokens(_ text: Substring, _ key: String) throws(FieldError) -> Int {
            let digits = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
            guard let count = Int(digits), (1_000...100_000_000).contains(count) else {
                throw FieldError(
                    field: key, message: "'\(text)' is not a context window in tokens",
                    fix: "use a whole number from 1000 to 100000000, as in 200000 or claude-opus-4-1=1000000,*=200000")
            }
            return count
        }
        if let text = value("DROVER_CONTEXT_WINDOW") {
            for part in text.split(separator: ",") {
                if let equals = part.firstIndex(of: "=") {
                    let model = part[..<equals].trimmingCharacters(in: .whitespaces)
                    let count = try tokens(part[part.index(after: equals)...], "DROVER_CONTEXT_WINDOW")
                    guard !model.isEmpty else {
                        throw FieldError(
                            field: "DROVER_CONTEXT_WINDOW", message: "'\(part)' names no model", fix: "write MODEL=TOKENS, or *=TOKENS for the rest")
                    }
                    if model == "*" { policy.defaultWindow = count } else { policy.windows[model] = count }
                } else {
                    policy.defaultWindow = try tokens(part, "DROVER_CONTEXT_WINDOW")
                }
            }
        }
        func whole(_ key: String, _ text: String, _ range: ClosedRange<Int>, _ what: String, default fallback: Int) throws(FieldError) -> Int {
            guard let number = Int(text), range.contains(number) else {
                throw FieldError(
                    field: key, message: "'\(text)' is not \(what)",
                    fix: "use a whole number from \(range.lowerBound) to \(range.upperBound) (default \(fallback))")
            }
            return number
        }
        if let text = value("DROVER_COMPACTION_MARGIN") {
            let digits = text.hasSuffix("%") ? String(text.dropLast()) : text
            policy.marginPercent = try whole("DROVER_COMPACTION_MARGIN", digits, 0...50, "a percentage of the window", default: 10)
        }
        if let text = value("DROVER_COMPACTION_LIMIT") {
            policy.limit = try whole("DROVER_COMPACTION_LIMIT", text, 1...100, "a number of compactions", default: 3)
        }
        if let text = value("DROVER_COMPACTION") {
            switch text.lowercased() {
            case "off", "0", "false", "no": policy.enabled = false
            case "on", "1", "true", "yes": policy.enabled = true
            default:
                throw FieldError(field: "DROVER_COMPACTION", message: "'\(text)' is neither on nor off", fix: "set it to off, or unset it")
            }
        }
        return policy
    }
}
