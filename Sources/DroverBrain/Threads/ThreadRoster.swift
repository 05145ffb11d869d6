import DroverCore
import Foundation

/// The agents a coordinator may start threads of, frozen with the session: each member's whole
/// definition, as the session's `agent.multiagent` shows it.
public struct ThreadRoster: Sendable, Codable, Equatable {
    public struct Member: Sendable, Codable, Equatable {
        /// The name the coordinator's model calls it by: the agent's name.
        public var name: String
        public var description: String?
        /// What the thread's turns run. It has no roster of its own: threads go one level deep.
        public var snapshot: AgentSnapshot
        /// The SDK's `BetaManagedAgentsSessionThreadAgent` (or `BetaManagedAgentsInlineAgent`),
        /// as a thread resource shows its `agent`.
        public var resource: JSONValue

        public init(name: String, description: String?, snapshot: AgentSnapshot, resource: JSONValue) {
            self.name = name
            self.description = description
            self.snapshot = snapshot
            self.resource = resource
        }
    }

    public var members: [Member]
    /// Whether the model may define an agent of its own when it starts a thread.
    public var inlineAgents: Bool

    public init(members: [Member], inlineAgents: Bool) {
        self.members = members
        self.inlineAgents = inlineAgents
    }

    enum CodingKeys: String, CodingKey {
        case members
        case inlineAgents = "inline_agents"
    }

    public func member(named name: String) -> Member? {
        members.first { $0.name == name }
    }

    /// A roster agent as a thread resource shows it: whole, as the API's are; one written in a
    /// file has no id, and shows as the SDK's inline agent.
    static func shown(_ agent: [String: JSONValue]) -> JSONValue {
        guard agent["id"] == nil else { return .object(agent) }
        var model = agent["model"] ?? .null
        if case .string(let id) = model { model = .object(["id": .string(id), "speed": "standard"]) }
        var tools: [JSONValue] = []
        for tool in agent["tools"]?.arrayValue ?? [] {
            guard case .object(var fields) = tool else { continue }
            if fields["type"] == "agent_toolset_20260401" {
                if fields["default_config"] == nil {
                    fields["default_config"] = .object(["enabled": .bool(true), "permission_policy": .object(["type": "always_allow"])])
                }
                if fields["configs"] == nil { fields["configs"] = .array([]) }
            }
            tools.append(.object(fields))
        }
        return .object([
            "type": "inline", "name": agent["name"] ?? .null, "description": agent["description"] ?? .null, "system": agent["system"] ?? .null,
            "model": model, "tools": .array(tools), "mcp_servers": .array([]), "skills": .array([]),
            "execution_identity": .object(["type": "service_account"]),
        ])
    }

    /// The roster a session's agent resource names in `multiagent` (the SDK's
    /// `BetaManagedAgentsSessionMultiagent`); nil when it names none or spawns no threads.
    static func fromSessionMultiagent(_ value: JSONValue?) throws -> ThreadRoster? {
        guard let fields = value?.objectValue else { return nil }
        let definitions: [JSONValue]
        var inline = false
        switch fields["type"]?.stringValue {
        case "coordinator":
            definitions = fields["agents"]?.arrayValue ?? []
        case "multiagent_20261001":
            guard let subagents = fields["subagents"]?.objectValue, subagents["type"] == "enabled" else { return nil }
            definitions = subagents["predefined_agents"]?.arrayValue ?? []
            inline = subagents["inline_agents"]?.objectValue?["type"] == "enabled"
        default:
            return nil
        }
        let members = try definitions.compactMap { definition -> Member? in
            guard var agent = definition.objectValue, let name = agent["name"]?.stringValue, agent["model"] != nil else { return nil }
            // A job file's roster agent is written out, with a playbook for the scripted model
            // and no id: it shows as an inline agent.
            agent.removeValue(forKey: "playbook")
            var snapshot = try AgentSnapshot(decoding: .object(agent))
            snapshot.roster = nil
            return Member(name: name, description: agent["description"]?.stringValue, snapshot: snapshot, resource: Self.shown(agent))
        }
        guard !members.isEmpty || inline else { return nil }
        return ThreadRoster(members: members, inlineAgents: inline)
    }
}

/// Which session, and which thread of it, a child thread's log belongs to. Kept in the thread's
/// agent snapshot, which is frozen with its log, so a turn of the thread knows where its replies go.
public struct ThreadOrigin: Sendable, Codable, Equatable {
    public var session: SessionID
    /// The thread that started it and gets its replies: the session's primary thread.
    public var parentThread: String
    public var agentName: String
    /// The agent as a thread resource shows it (the SDK's session thread agent, or inline agent).
    public var resource: JSONValue?

    public init(session: SessionID, parentThread: String, agentName: String, resource: JSONValue? = nil) {
        self.session = session
        self.parentThread = parentThread
        self.agentName = agentName
        self.resource = resource
    }

    enum CodingKeys: String, CodingKey {
        case session, resource
        case parentThread = "parent_thread"
        case agentName = "agent_name"
    }
}

/// Session thread ids. A session's primary thread is its own log, named `sthr_` and the
/// session's id part; a child thread's log is named after the tool call that started it, so a
/// call run again after a crash finds the thread it started, and starts no second one.
public enum ThreadIDs {
    public static func primary(of session: SessionID) -> String {
        "sthr_" + session.idPart
    }

    /// The child thread the tool call `useId` (`sevt_<session>_<seq>`) starts.
    public static func child(startedBy useId: String) -> SessionID? {
        guard useId.hasPrefix("sevt_") else { return nil }
        return try? SessionID("sthr_" + useId.dropFirst(5))
    }

    /// Whether `thread` names a child thread of `session` (by its id alone; its log says for sure).
    public static func isChild(_ thread: String, of session: SessionID) -> Bool {
        thread.hasPrefix("sthr_\(session.idPart)_") && thread.utf8.count > "sthr_\(session.idPart)_".utf8.count
    }
}
