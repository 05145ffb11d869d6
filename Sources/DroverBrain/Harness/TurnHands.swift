import DroverCore
import DroverTools

/// The hands of one turn: the worker's built-in hand (the sandbox toolset) and the agent's MCP
/// servers, behind one routing table. MCP tools are listed once per turn, concurrently, and the
/// listing is kept for the turn.
struct TurnHands: Sendable {
    enum Route: Sendable {
        case builtIn
        case mcp(server: MCPServerDefinition, tool: String)
    }

    let builtIn: any Hand
    let mcp: (any MCPHand)?
    let agent: AgentSnapshot
    /// Enabled MCP tools, by qualified name.
    private(set) var mcpTools: [String: (server: String, tool: MCPTool)] = [:]
    /// Servers whose tools could not be listed, with the reason.
    private(set) var unreachable: [(server: String, message: String)] = []

    init(builtIn: any Hand, mcp: (any MCPHand)?, agent: AgentSnapshot) {
        self.builtIn = builtIn
        self.mcp = mcp
        self.agent = agent
    }

    /// Lists every server's tools at once; a server that is down costs only its own tools.
    mutating func listMCPTools(session: SessionID) async {
        guard let mcp, !agent.mcpServers.isEmpty else { return }
        let listings = await withTaskGroup(of: (MCPServerDefinition, Result<[MCPTool], Error>).self) { group in
            for server in agent.mcpServers {
                group.addTask {
                    do { return (server, .success(try await mcp.listTools(server, session: session))) } catch { return (server, .failure(error)) }
                }
            }
            var all: [(MCPServerDefinition, Result<[MCPTool], Error>)] = []
            for await listing in group { all.append(listing) }
            return all
        }
        for (server, listing) in listings.sorted(by: { $0.0.name < $1.0.name }) {
            switch listing {
            case .success(let tools):
                let policy = agent.mcpPolicy(server: server.name)
                for tool in tools where policy.isEnabled(tool.name) {
                    mcpTools[MCPToolName.qualified(server: server.name, tool: tool.name)] = (server.name, tool)
                }
            case .failure(let error):
                unreachable.append((server.name, "\(error)"))
            }
        }
    }

    /// What the model is offered: enabled built-in tools, then enabled MCP tools.
    var definitions: [ModelToolDefinition] {
        builtIn.tools.filter { agent.toolset.isEnabled($0.name) }
            + mcpTools.keys.sorted().map { name in
                let tool = mcpTools[name]!.tool
                return ModelToolDefinition(name: name, description: tool.description, inputSchema: tool.inputSchema)
            }
    }

    /// MCP when the name is `mcp__SERVER__TOOL` for one of the agent's servers, listed or not (a
    /// server that was down at listing still gets the call, and answers it with an error).
    func route(_ name: String) -> Route {
        if let (server, tool) = MCPToolName.parse(name, servers: agent.mcpServers) { return .mcp(server: server, tool: tool) }
        return .builtIn
    }

    func asks(_ route: Route, name: String) -> Bool {
        switch route {
        case .builtIn: agent.toolset.asks(name)
        case .mcp(let server, let tool): agent.mcpPolicy(server: server.name).asks(tool)
        }
    }

    func isEnabled(_ route: Route, name: String) -> Bool {
        switch route {
        case .builtIn: agent.toolset.isEnabled(name)
        case .mcp(let server, let tool): agent.mcpPolicy(server: server.name).isEnabled(tool)
        }
    }

    func execute(_ route: Route, name: String, input: JSONValue, context: ToolContext) async throws -> ToolResult {
        switch route {
        case .builtIn:
            return try await builtIn.execute(name: name, input: input, context: context)
        case .mcp(let server, let tool):
            guard let mcp else { return .text("MCP servers are not available in this worker", isError: true) }
            return await mcp.callTool(server, name: tool, arguments: input, deadline: context.deadline, session: context.session)
        }
    }
}

extension TurnHands.Route {
    var isMCP: Bool {
        if case .mcp = self { return true }
        return false
    }
}
