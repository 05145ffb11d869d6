import DroverCore
import DroverTools
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
    /// The built-in toolset's `default_config` and per-tool `configs`, as in the SDK's
    /// `agent_toolset_20260401`: whether a tool is enabled, and its permission policy.
    public var toolset: ToolsetConfig
    /// The agent's MCP servers and their `mcp_toolset` policies (AgentSnapshot+MCP.swift).
    public var mcpServers: [MCPServerDefinition] = []
    public var mcpToolsets: [MCPToolsetConfig] = []
    /// A coordinator's roster: the agents its model may start threads of (Threads/).
    public var roster: ThreadRoster?
    /// Set in a child thread's log only: the session and thread its replies go to.
    public var thread: ThreadOrigin?

    public struct ToolsetConfig: Sendable, Codable, Equatable {
        public struct Policy: Sendable, Codable, Equatable {
            /// `always_allow` or `always_ask`.
            public var type: String
            public init(type: String) { self.type = type }
        }

        public struct DefaultConfig: Sendable, Codable, Equatable {
            public var enabled: Bool
            public var permissionPolicy: Policy
            enum CodingKeys: String, CodingKey {
                case enabled
                case permissionPolicy = "permission_policy"
            }
            public init(enabled: Bool = true, permissionPolicy: Policy = Policy(type: "always_allow")) {
                self.enabled = enabled
                self.permissionPolicy = permissionPolicy
            }
        }

        public struct ToolConfig: Sendable, Codable, Equatable {
            public var name: String
            public var enabled: Bool?
            public var permissionPolicy: Policy?
            enum CodingKeys: String, CodingKey {
                case name, enabled
                case permissionPolicy = "permission_policy"
            }
            public init(name: String, enabled: Bool? = nil, permissionPolicy: Policy? = nil) {
                self.name = name
                self.enabled = enabled
                self.permissionPolicy = permissionPolicy
            }
        }

        public var defaultConfig: DefaultConfig
        public var configs: [ToolConfig]

        enum CodingKeys: String, CodingKey {
            case configs
            case defaultConfig = "default_config"
        }

        public init(defaultConfig: DefaultConfig = DefaultConfig(), configs: [ToolConfig] = []) {
            self.defaultConfig = defaultConfig
            self.configs = configs
        }

        public func isEnabled(_ tool: String) -> Bool {
            configs.first { $0.name == tool }?.enabled ?? defaultConfig.enabled
        }

        public func asks(_ tool: String) -> Bool {
            (configs.first { $0.name == tool }?.permissionPolicy ?? defaultConfig.permissionPolicy).type == "always_ask"
        }
    }

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

    public init(
        model: String, system: String? = nil, maxTokens: Int = 4096, maxModelRequestsPerTurn: Int = 50,
        toolTimeoutSeconds: Double = 600, customTools: [CustomTool] = [], toolset: ToolsetConfig = ToolsetConfig()
    ) {
        self.toolset = toolset
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
        case toolset
        case mcpServers = "mcp_servers"
        case mcpToolsets = "mcp_toolsets"
        case roster, thread
    }

    /// Keys of the SDK's agent resource (`BetaManagedAgentsAgent`), also accepted when decoding.
    enum ResourceKeys: String, CodingKey {
        case model, tools, multiagent
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let resource = try decoder.container(keyedBy: ResourceKeys.self)
        // `model` is a string here, or the SDK's model config `{"id": ..., ...}`.
        if let id = try? container.decode(String.self, forKey: .model) {
            model = id
        } else {
            model =
                try resource.decode(JSONValue.self, forKey: .model).objectValue?["id"]?.stringValue
                ?? {
                    throw DecodingError.dataCorruptedError(forKey: .model, in: resource, debugDescription: "model must be a string or {\"id\": ...}")
                }()
        }
        system = try container.decodeIfPresent(String.self, forKey: .system)
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 4096
        maxModelRequestsPerTurn = try container.decodeIfPresent(Int.self, forKey: .maxModelRequestsPerTurn) ?? 50
        toolTimeoutSeconds = try container.decodeIfPresent(Double.self, forKey: .toolTimeoutSeconds) ?? 600
        customTools = try container.decodeIfPresent([CustomTool].self, forKey: .customTools) ?? []
        toolset = try container.decodeIfPresent(ToolsetConfig.self, forKey: .toolset) ?? ToolsetConfig()
        (mcpServers, mcpToolsets) = try Self.decodeMCP(from: decoder)
        thread = try container.decodeIfPresent(ThreadOrigin.self, forKey: .thread)
        if container.contains(.roster) {
            roster = try container.decodeIfPresent(ThreadRoster.self, forKey: .roster)
        } else {
            roster = try ThreadRoster.fromSessionMultiagent(try resource.decodeIfPresent(JSONValue.self, forKey: .multiagent))
        }
        // The SDK's `tools` list: an `agent_toolset_20260401` entry and `custom` tools.
        if let tools = try resource.decodeIfPresent([JSONValue].self, forKey: .tools) {
            let sdk = Self.fromSDKTools(tools)
            if !container.contains(.customTools) { customTools = sdk.custom }
            // An SDK agent without the toolset entry has no built-in tools.
            if !container.contains(.toolset) { toolset = sdk.toolset ?? ToolsetConfig(defaultConfig: .init(enabled: false)) }
        }
    }

    static func fromSDKTools(_ tools: [JSONValue]) -> (custom: [CustomTool], toolset: ToolsetConfig?) {
        var custom: [CustomTool] = []
        var toolset: ToolsetConfig?
        func policy(_ value: JSONValue?) -> ToolsetConfig.Policy? {
            value?.objectValue?["type"]?.stringValue.map(ToolsetConfig.Policy.init(type:))
        }
        func flag(_ value: JSONValue?) -> Bool? {
            if case .bool(let on)? = value { return on }
            return nil
        }
        for tool in tools {
            guard let fields = tool.objectValue else { continue }
            switch fields["type"]?.stringValue {
            case "custom":
                guard let name = fields["name"]?.stringValue else { continue }
                custom.append(
                    CustomTool(
                        name: name, description: fields["description"]?.stringValue ?? "",
                        inputSchema: fields["input_schema"] ?? .object(["type": .string("object")])))
            case "agent_toolset_20260401":
                let defaults = fields["default_config"]?.objectValue ?? [:]
                let defaultConfig = ToolsetConfig.DefaultConfig(
                    enabled: flag(defaults["enabled"]) ?? true,
                    permissionPolicy: policy(defaults["permission_policy"]) ?? ToolsetConfig.Policy(type: "always_allow"))
                var configs: [ToolsetConfig.ToolConfig] = []
                if case .array(let items)? = fields["configs"] {
                    for item in items {
                        guard let config = item.objectValue, let name = config["name"]?.stringValue else { continue }
                        configs.append(
                            ToolsetConfig.ToolConfig(
                                name: name, enabled: flag(config["enabled"]), permissionPolicy: policy(config["permission_policy"])))
                    }
                }
                toolset = ToolsetConfig(defaultConfig: defaultConfig, configs: configs)
            default:
                continue
            }
        }
        return (custom, toolset)
    }

    /// Decodes a snapshot from JSON in either shape it accepts (its own, or the SDK agent's).
    public init(decoding value: JSONValue) throws {
        self = try JSONDecoder().decode(AgentSnapshot.self, from: Data(value.compactJSON.utf8))
    }

    public var json: String {
        String(decoding: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
