import DroverCore
import Foundation

/// The parts of an agent a turn needs, frozen when the session was created.
public struct AgentSnapshot: Sendable, Codable, Equatable {
    public var model: String
    public var system: String?
    public var maxTokens: Int
    /// Model requests allowed per turn before it stops with `budget_reached`.
    public var maxModelRequestsPerTurn: Int
    /// Seconds one tool call may run.
    public var toolTimeoutSeconds: Double

    public init(model: String, system: String? = nil, maxTokens: Int = 4096, maxModelRequestsPerTurn: Int = 50, toolTimeoutSeconds: Double = 600) {
        self.model = model
        self.system = system
        self.maxTokens = maxTokens
        self.maxModelRequestsPerTurn = maxModelRequestsPerTurn
        self.toolTimeoutSeconds = toolTimeoutSeconds
    }

    enum CodingKeys: String, CodingKey {
        case model, system
        case maxTokens = "max_tokens"
        case maxModelRequestsPerTurn = "max_model_requests_per_turn"
        case toolTimeoutSeconds = "tool_timeout_seconds"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        system = try container.decodeIfPresent(String.self, forKey: .system)
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 4096
        maxModelRequestsPerTurn = try container.decodeIfPresent(Int.self, forKey: .maxModelRequestsPerTurn) ?? 50
        toolTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .toolTimeoutSeconds) ?? 600
    }

    public var json: String {
        String(decoding: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
