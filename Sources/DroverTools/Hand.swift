import DroverCore

/// What a tool call runs under: the session, the writer's fence (a hand refuses stale epochs),
/// and when it must be done.
public struct ToolContext: Sendable {
    public let session: SessionID
    public let fence: SessionFence
    public let deadline: ContinuousClock.Instant
    /// The session's environment, read once when the turn started (`.none` without one).
    public let environment: EnvironmentConfig
    /// The hosts of the agent's URL MCP servers, which `allow_mcp_servers` opens to its sandbox.
    public let mcpHosts: [String]

    public init(
        session: SessionID, fence: SessionFence, deadline: ContinuousClock.Instant, environment: EnvironmentConfig = .none, mcpHosts: [String] = []
    ) {
        self.session = session
        self.fence = fence
        self.deadline = deadline
        self.environment = environment
        self.mcpHosts = mcpHosts
    }
}

/// What a tool returned, in the blocks the session log stores: the `agent.tool_result` is made
/// from it as it is.
public struct ToolResult: Sendable, Equatable {
    public var content: [ContentBlock]
    public var isError: Bool

    public init(content: [ContentBlock], isError: Bool = false) {
        self.content = content
        self.isError = isError
    }

    public static func text(_ text: String, isError: Bool = false) -> ToolResult {
        ToolResult(content: [.text(text)], isError: isError)
    }
}

/// Sandboxes, MCP servers and custom tools, behind one call. The brain does not care which.
public protocol Hand: Sendable {
    /// The tools this hand offers the model.
    var tools: [ModelToolDefinition] { get }

    /// Starts provisioning what the session's tools need, in the background. Called at wake; the
    /// first model request never waits for it, only the first tool call does.
    func prepare(session: SessionID) async

    /// `prepare(session:)` for a session with an environment `config`.
    func prepare(session: SessionID, environment: EnvironmentConfig) async

    /// Runs one tool. Errors the model should see come back as `ToolResult(isError: true)`;
    /// a thrown error means the hand itself failed.
    func execute(name: String, input: JSONValue, context: ToolContext) async throws -> ToolResult

    /// The session's turn is about to go idle: send back the files the session asked for (a
    /// job's output file and `collect` paths), before whoever waits for the idle status reads
    /// them. A failure is recorded with the files, not thrown: the turn itself went well.
    func turnEnding(session: SessionID) async
}

extension Hand {
    public func turnEnding(session: SessionID) async {}

    public func prepare(session: SessionID, environment: EnvironmentConfig) async {
        await prepare(session: session)
    }
}
