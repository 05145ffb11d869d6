import DroverCore
import DroverSessionLog
import DroverTools
import Foundation

/// What a session runs, frozen into its log when it is created: the log is the one place a
/// session's agent is kept (Redis while hot, its SQLite row always). The API's session resource
/// only names the agent version, which never changes once written.
extension SessionLog {
    /// Creates the session's log with its agent and its environment's `config`. Returns false if
    /// it existed already (what it was created with then stays).
    @discardableResult
    public func create(_ session: SessionID, agent: AgentSnapshot, environment: JSONValue? = nil) async throws(SessionLogError) -> Bool {
        try await create(session, agentJSON: agent.json, environmentJSON: Self.storedEnvironment(environment))
    }

    /// An environment `config` as a session stores it: nil for none (or null).
    public static func storedEnvironment(_ config: JSONValue?) -> String? {
        config.flatMap { $0 == .null ? nil : $0.compactJSON }
    }

    /// The environment the session was created with, typed (`.none` for one without). A stored
    /// config that no longer parses throws: the caller decides what a session without it does.
    public func environmentConfig(_ session: SessionID) async throws -> EnvironmentConfig {
        try Self.environmentConfig(json: try await environmentJSON(session))
    }

    public static func environmentConfig(json: String?) throws -> EnvironmentConfig {
        try json.map { try EnvironmentConfig.parse(try JSONValue.parse($0)) } ?? .none
    }

    /// The agent the session was created with; nil for a session created without one. A stored
    /// agent that no longer decodes throws `DecodingError`: the caller must never run another
    /// agent in its place.
    public func agentSnapshot(_ session: SessionID) async throws -> AgentSnapshot? {
        try Self.agentSnapshot(json: try await agentJSON(session))
    }

    /// The agent stored as `json`; nil for none. Throws `DecodingError` as `agentSnapshot(_:)`.
    public static func agentSnapshot(json: String?) throws -> AgentSnapshot? {
        guard let json else { return nil }
        if let known = Self.decodedAgents.withLock({ $0[json] }) { return known }
        let agent = try JSONDecoder().decode(AgentSnapshot.self, from: Data(json.utf8))
        Self.decodedAgents.withLock { cache in
            if cache.count >= Self.decodedAgentLimit { cache.removeAll(keepingCapacity: true) }
            cache[json] = agent
        }
        return agent
    }

    /// Agents decoded lately, by their stored text: a batch's thousand sessions share one agent,
    /// and its turns need not decode it a thousand times. The text is the whole key, so an agent
    /// that changed is decoded afresh.
    private static let decodedAgents = Locked<[String: AgentSnapshot]>([:])
    private static let decodedAgentLimit = 64
}
