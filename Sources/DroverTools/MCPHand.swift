import DroverCore

/// One tool an MCP server lists: a tool definition like any other, before it is offered to the
/// model under its qualified name.
public typealias MCPTool = ModelToolDefinition

/// The MCP servers of a worker: it connects, lists and calls. Implemented in DroverHands over the
/// MCP swift-sdk; connections live as long as the worker and are reused across sessions.
public protocol MCPHand: Sendable {
    /// The server's tools, as `session` reaches them (with a bearer token from its vaults, when
    /// one names the server). Throws when the server cannot be reached; the message says why.
    func listTools(_ server: MCPServerDefinition, session: SessionID) async throws -> [MCPTool]

    /// Calls one tool for `session`. A server that is down, dies mid-call or misses the deadline
    /// gives an `is_error` result; this never hangs past the deadline.
    func callTool(
        _ server: MCPServerDefinition, name: String, arguments: JSONValue, deadline: ContinuousClock.Instant, session: SessionID
    ) async -> ToolResult
}

/// Names MCP tools for the model: `mcp__SERVER__TOOL`, so two servers' tools never collide with
/// each other or with the built-in toolset.
public enum MCPToolName {
    public static func qualified(server: String, tool: String) -> String {
        "mcp__\(server)__\(tool)"
    }

    /// The server and tool a qualified name points at, matched against the agent's servers.
    public static func parse(_ name: String, servers: [MCPServerDefinition]) -> (server: MCPServerDefinition, tool: String)? {
        guard name.hasPrefix("mcp__") else { return nil }
        // The longest server name first, so `a` never steals `a__b`'s tools.
        for server in servers.sorted(by: { $0.name.count > $1.name.count }) {
            let prefix = "mcp__\(server.name)__"
            if name.hasPrefix(prefix), name.count > prefix.count {
                return (server, String(name.dropFirst(prefix.count)))
            }
        }
        return nil
    }
}
