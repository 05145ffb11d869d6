import DroverCore
import Foundation

/// What usage costs, in US dollars: per million tokens of each model, and per hour a session
/// spends running (the hosted product charges $0.08). The embedded rates are the published
/// list prices when this was written; a rates file (`drover report usage --rates FILE`, the
/// format `--print-rates` writes) replaces them, since prices change and contracts differ.
public struct UsageRates: Sendable, Equatable, Decodable {
    public struct ModelRate: Sendable, Equatable, Decodable {
        /// Dollars per million tokens.
        public var input: Double
        public var output: Double
        public var cacheRead: Double?
        public var cacheWrite: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case input, output
            case cacheRead = "cache_read"
            case cacheWrite = "cache_write"
        }

        public init(input: Double, output: Double, cacheRead: Double? = nil, cacheWrite: Double? = nil) {
            self.input = input
            self.output = output
            self.cacheRead = cacheRead
            self.cacheWrite = cacheWrite
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let fix = "give dollars per million tokens, such as `input: 3.0`"
            input = try container.require(Double.self, .input, fix: fix)
            output = try container.require(Double.self, .output, fix: fix)
            cacheRead = try container.decodeIfPresent(Double.self, forKey: .cacheRead)
            cacheWrite = try container.decodeIfPresent(Double.self, forKey: .cacheWrite)
            for (key, value) in [(CodingKeys.input, input), (.output, output), (.cacheRead, cacheRead ?? 0), (.cacheWrite, cacheWrite ?? 0)]
            where !(0...1_000_000).contains(value) {
                throw decoder.problem(key, "\(value) is not a price", fix: "use 0 to 1000000 dollars per million tokens")
            }
        }
    }

    /// By model name; a name also prices the dated versions it begins (`claude-sonnet-4-5`
    /// prices `claude-sonnet-4-5-20250929`).
    public var models: [String: ModelRate]
    /// Dollars per hour of a session's running time.
    public var runtimePerSessionHour: Double

    enum CodingKeys: String, CodingKey, CaseIterable {
        case models
        case runtimePerSessionHour = "runtime_per_session_hour"
    }

    public init(models: [String: ModelRate], runtimePerSessionHour: Double) {
        self.models = models
        self.runtimePerSessionHour = runtimePerSessionHour
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        models = try container.decodeIfPresent([String: ModelRate].self, forKey: .models) ?? [:]
        runtimePerSessionHour = try container.decodeIfPresent(Double.self, .runtimePerSessionHour, in: 0...10_000) ?? 0.08
    }

    /// List prices per million tokens (cache writes at 1.25x input, cache reads at 0.1x).
    public static let embedded = UsageRates(
        models: [
            "claude-opus-4-5": ModelRate(input: 5, output: 25, cacheRead: 0.5, cacheWrite: 6.25),
            "claude-opus-4-1": ModelRate(input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75),
            "claude-opus-4-0": ModelRate(input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75),
            "claude-sonnet-4-5": ModelRate(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
            "claude-sonnet-4-0": ModelRate(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
            "claude-3-7-sonnet": ModelRate(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
            "claude-haiku-4-5": ModelRate(input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25),
            "claude-3-5-haiku": ModelRate(input: 0.8, output: 4, cacheRead: 0.08, cacheWrite: 1),
        ], runtimePerSessionHour: 0.08)

    /// A rates file, with errors that name the line and the field.
    public static func load(_ url: URL) throws -> UsageRates {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw FieldError(field: "--rates", message: "cannot read \(url.path): \(error.localizedDescription)", fix: "pass a readable YAML file")
        }
        return try SourceFileDecoder.decode(
            UsageRates.self, from: text, file: url.path, emptyFix: "write the format `drover report usage --print-rates` prints")
    }

    /// The rate of a model: its own name, else the longest name it begins with.
    public func rate(for model: String?) -> ModelRate? {
        guard let model else { return nil }
        if let exact = models[model] { return exact }
        return models.filter { model.hasPrefix($0.key + "-") }.max { $0.key.count < $1.key.count }?.value
    }

    /// What a session's tokens cost (nil: its model has no rate), and its running time.
    public func cost(of usage: MeteredSession) -> (tokens: Double?, runtime: Double) {
        let runtime = usage.activeSeconds / 3600 * runtimePerSessionHour
        guard let rate = rate(for: usage.model) else { return (nil, runtime) }
        let tokens =
            (Double(usage.inputTokens) * rate.input + Double(usage.outputTokens) * rate.output
                + Double(usage.cacheReadInputTokens) * (rate.cacheRead ?? rate.input)
                + Double(usage.cacheCreationInputTokens) * (rate.cacheWrite ?? rate.input)) / 1_000_000
        return (tokens, runtime)
    }

    /// The rates as a file `load` reads back.
    public var yaml: String {
        func number(_ value: Double) -> String { String(format: "%g", value) }
        var lines = [
            "# Dollars per million tokens, by model (a name also prices its dated versions), and per hour",
            "# a session spends running. drover report usage --rates FILE reads this format.",
            "runtime_per_session_hour: \(number(runtimePerSessionHour))", "models:",
        ]
        for (name, rate) in models.sorted(by: { $0.key < $1.key }) {
            var fields = ["input: \(number(rate.input))", "output: \(number(rate.output))"]
            if let read = rate.cacheRead { fields.append("cache_read: \(number(read))") }
            if let write = rate.cacheWrite { fields.append("cache_write: \(number(write))") }
            lines.append("  \(name): {\(fields.joined(separator: ", "))}")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
