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
    /// Tools the client runs: a call idles the session with `requires_action` until the client
    /// sends `user.custom_tool_result`.
    public var customTools: [CustomTool]

    public struct CustomTool: Sendable, Codable, Equatable {
        public var name: String
        public var description: String
        public var inputSchema: JSONValue

        public init(name: String, description: String, inputSchema: JSONValue) {
            self.name = name
            self.description = description
            self.inputSchema = inputSchema
        }

        enum CodingKeys: String, CodingKey {
            case name, description
            case inputSchema = "input_schema"
        }
    }

    public init(model: String, system: String? = nil, maxTokens: Int = 4096, maxModelRequestsPerTurn: Int = 50,
                toolTimeoutSeconds: Double = 600, customTools: [CustomTool] = []) {
        self.model = model
        self.system = system
        self.maxTokens = maxTokens
        self.maxModelRequestsPerTurn = maxModelRequestsPerTurn
        self.toolTimeoutSeconds = toolTimeoutSeconds
        self.customTools = customTools
    }

    enum CodingKeys: String, CodingKey {
        case model, system
        case maxTokens = "max_tokens"
        case maxModelRequestsPerTurn = "max_model_requests_per_turn"
        case toolTimeoutSeconds = "tool_timeout_seconds"
        case customTools = "custom_tools"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        system = try container.decodeIfPresent(String.self, forKey: .system)
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 4096
        maxModelRequestsPerTurn = try container.decodeIfPresent(Int.self, forKey: .maxModelRequestsPerTurn) ?? 50
        toolTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .toolTimeoutSeconds) ?? 600
        customTools = try container.decodeIfPresent([CustomTool].self, forKey: .customTools) ?? []
    }

    public var json: String {
        String(decoding: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
