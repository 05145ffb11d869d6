import DroverCore
import Foundation

/// A session's agent is kept once, frozen in the session's log as the snapshot its turns run. A
/// session row keeps only which agent version that was; agent versions are never changed or
/// deleted once written, so the resource's `agent` is read from that version.
extension ControlPlaneStore {
    /// The agent fields a session resource shows (the SDK's `BetaManagedAgentsSessionAgent`).
    public static let sessionAgentFields: Set<String> = [
        "id", "description", "execution_identity", "mcp_servers", "model", "multiagent", "name", "skills", "system", "tools", "type", "version",
    ]

    /// The agent version a session row names.
    public static func agentReference(_ agent: Row) -> JSONValue {
        .object(["type": "agent", "id": .string(agent.id), "version": .number(Double(agent.version))])
    }

    /// An agent resource cut to what a session resource shows of it.
    public static func sessionAgent(_ agent: [String: JSONValue]) -> JSONValue {
        .object(agent.filter { sessionAgentFields.contains($0.key) })
    }

    /// The session resource's `agent`, from the version its row names. Rows written before
    /// sessions kept only the reference hold the whole agent, and show it as stored.
    public func sessionAgent(_ stored: JSONValue?, workspace: String) async throws -> JSONValue {
        guard let fields = stored?.objectValue, fields["model"] == nil, let id = fields["id"]?.stringValue,
            let version = fields["version"]?.intValue,
            let row = try await find(.agents, id: id, workspace: workspace, version: version),
            let agent = try? JSONValue.parse(row.resource).objectValue
        else { return try await expandingRoster(stored ?? .null, workspace: workspace) }
        return try await expandingRoster(Self.sessionAgent(agent), workspace: workspace)
    }

    /// `agent` with its `multiagent` roster's references replaced by the whole definitions of
    /// those versions (the SDK's `BetaManagedAgentsSessionMultiagent`), as a session shows and
    /// runs them. Versions never change once written, so this is the same whenever it is read.
    public func expandingRoster(_ agent: JSONValue, workspace: String) async throws -> JSONValue {
        guard case .object(var fields) = agent, case .object(var multiagent)? = fields["multiagent"] else { return agent }
        func expand(_ list: JSONValue?) async throws -> JSONValue? {
            guard let items = list?.arrayValue else { return list }
            var expanded: [JSONValue] = []
            for item in items {
                guard let reference = item.objectValue, reference["model"] == nil, let id = reference["id"]?.stringValue,
                    let version = reference["version"]?.intValue,
                    let row = try await find(.agents, id: id, workspace: workspace, version: version),
                    let definition = try? JSONValue.parse(row.resource).objectValue
                else {
                    expanded.append(item)
                    continue
                }
                expanded.append(.object(definition.filter { Self.sessionAgentFields.contains($0.key) && $0.key != "multiagent" }))
            }
            return .array(expanded)
        }
        switch multiagent["type"]?.stringValue {
        case "coordinator":
            multiagent["agents"] = try await expand(multiagent["agents"])
        case "multiagent_20261001":
            for member in ["subagents", "workflows"] {
                guard case .object(var inner)? = multiagent[member], inner["type"] == "enabled" else { continue }
                inner["predefined_agents"] = try await expand(inner["predefined_agents"])
                multiagent[member] = .object(inner)
            }
        default:
            return agent
        }
        fields["multiagent"] = .object(multiagent)
        return .object(fields)
    }
}
