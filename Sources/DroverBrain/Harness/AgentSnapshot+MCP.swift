import DroverCore
import DroverTools
import Foundation

/// The SDK's `mcp_toolset` tool entry: which of one server's tools are enabled, and their
/// permission policy (`always_allow` or `always_ask`).
public struct MCPToolsetConfig: Sendable, Codable, Equatable {
    public var mcpServerName: String
    public var defaultConfig: AgentSnapshot.ToolsetConfig.DefaultConfig
    public var configs: [AgentSnapshot.ToolsetConfig.ToolConfig]

    /// The Managed Agents default for MCP tools: enabled, and asked for.
    public static let defaultPolicy = AgentSnapshot.ToolsetConfig.DefaultConfig(enabled: true, permissionPolicy: .init(type: "always_ask"))

    enum CodingKeys: String, CodingKey {
        case mcpServerName = "mcp_server_name"
        case defaultConfig = "default_config"
        case configs
    }

    public init(
        mcpServerName: String, defaultConfig: AgentSnapshot.ToolsetConfig.DefaultConfig = MCPToolsetConfig.defaultPolicy,
        configs: [AgentSnapshot.ToolsetConfig.ToolConfig] = []
    ) {
        self.mcpServerName = mcpServerName
        self.defaultConfig = defaultConfig
        self.configs = configs
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        mcpServerName = try container.decode(String.self, forKey: .mcpServerName)
        defaultConfig = try container.decodeIfPresent(AgentSnapshot.ToolsetConfig.DefaultConfig.self, forKey: .defaultConfig) ?? Self.defaultPolicy
        configs = try container.decodeIfPresent([AgentSnapshot.ToolsetConfig.ToolConfig].self, forKey: .configs) ?? []
    }

    var policy: AgentSnapshot.ToolsetConfig { .init(defaultConfig: defaultConfig, configs: configs) }
}

extension AgentSnapshot {
    /// The hosts of the agent's URL servers: what `allow_mcp_servers` opens to its sandbox.
    public var mcpHosts: [String] { mcpServers.compactMap { $0.endpoint?.host } }

    private enum MCPKeys: String, CodingKey {
        case mcpServers = "mcp_servers"
        case mcpToolsets = "mcp_toolsets"
        case tools
    }

    private struct ToolEntry: Decodable {
        var type: String
    }

    /// `mcp_servers`, and the `mcp_toolset` entries from either `mcp_toolsets` (the snapshot's own
    /// key) or the SDK agent's `tools` list.
    static func decodeMCP(from decoder: Decoder) throws -> (servers: [MCPServerDefinition], toolsets: [MCPToolsetConfig]) {
        let container = try decoder.container(keyedBy: MCPKeys.self)
        let servers = try container.decodeIfPresent([MCPServerDefinition].self, forKey: .mcpServers) ?? []
        var toolsets = try container.decodeIfPresent([MCPToolsetConfig].self, forKey: .mcpToolsets) ?? []
        if toolsets.isEmpty, let tools = try? container.decodeIfPresent([JSONValue].self, forKey: .tools) {
            let data = try JSONEncoder().encode(tools.filter { $0.objectValue?["type"]?.stringValue == "mcp_toolset" })
            toolsets = try JSONDecoder().decode([MCPToolsetConfig].self, from: data)
        }
        var seen = Set<String>()
        for server in servers where !seen.insert(server.name).inserted {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: [MCPKeys.mcpServers],
                    debugDescription:
                        "mcp_servers: the name \"\(server.name)\" is used twice; give each server a unique name"))
        }
        return (servers, toolsets)
    }

    /// The enabled/permission policy for one server's tools; with no `mcp_toolset` entry, the
    /// Managed Agents default (enabled, `always_ask`).
    public func mcpPolicy(server: String) -> ToolsetConfig {
        mcpToolsets.first { $0.mcpServerName == server }?.policy ?? ToolsetConfig(defaultConfig: MCPToolsetConfig.defaultPolicy)
    }
}
