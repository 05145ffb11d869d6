import DroverCore
import Foundation

/// An MCP server an agent reaches, as the SDK's `mcp_servers` entries: `{"type": "url", "name",
/// "url"}`. `{"type": "stdio", "name", "command": [...], "env": {...}}` is a Drover extension: a
/// local server started by command, which the Managed Agents API does not have.
public struct MCPServerDefinition: Sendable, Codable, Equatable, Hashable {
    public enum Kind: String, Sendable, Codable, Hashable {
        case url, stdio
    }

    public var name: String
    public var type: Kind
    public var url: String?
    public var command: [String]?
    public var env: [String: String]?

    /// The URL server's host and port (the scheme's default when the URL names none); nil for a
    /// stdio server or a URL that is not http(s).
    public var endpoint: (host: String, port: Int)? {
        guard type == .url, let url, let components = URLComponents(string: url), let host = components.host, !host.isEmpty else { return nil }
        switch components.scheme?.lowercased() {
        case "http": return (host, components.port ?? 80)
        case "https": return (host, components.port ?? 443)
        default: return nil
        }
    }

    public static func url(_ name: String, _ url: String) -> MCPServerDefinition {
        MCPServerDefinition(name: name, type: .url, url: url)
    }

    public static func stdio(_ name: String, command: [String], env: [String: String]? = nil) -> MCPServerDefinition {
        MCPServerDefinition(name: name, type: .stdio, command: command, env: env)
    }

    public init(name: String, type: Kind, url: String? = nil, command: [String]? = nil, env: [String: String]? = nil) {
        self.name = name
        self.type = type
        self.url = url
        self.command = command
        self.env = env
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        let rawType = try container.decode(String.self, forKey: .type)
        guard let kind = Kind(rawValue: rawType) else {
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container,
                debugDescription:
                    "mcp_servers[].type \"\(rawType)\" is not supported: use \"url\" (with url) or \"stdio\" (with command, a Drover extension)")
        }
        type = kind
        url = try container.decodeIfPresent(String.self, forKey: .url)
        command = try container.decodeIfPresent([String].self, forKey: .command)
        env = try container.decodeIfPresent([String: String].self, forKey: .env)
        if kind == .url && (url ?? "").isEmpty {
            throw DecodingError.dataCorruptedError(
                forKey: .url, in: container,
                debugDescription:
                    "mcp_servers[\"\(name)\"].url is missing: a url server needs its endpoint, e.g. http://127.0.0.1:8000/mcp")
        }
        if kind == .stdio && (command ?? []).isEmpty {
            throw DecodingError.dataCorruptedError(
                forKey: .command, in: container,
                debugDescription:
                    "mcp_servers[\"\(name)\"].command is missing: a stdio server needs its program and arguments, e.g. [\"python3\", \"server.py\"]")
        }
    }
}
