import DroverBrain
import DroverCore
import DroverDatabase

/// Checks an agent's `multiagent` against the agent store and writes the SDK's resolved form:
/// every roster entry an `{type: agent, id, version}` reference to a live agent of the
/// workspace that coordinates nothing itself (threads go one level deep).
struct MultiagentResolution: Sendable {
    let store: ControlPlaneStore

    /// The `multiagent` to store for agent `owner` at `version` (the version being written, which
    /// `self` names), from the update `sent` over the `stored` value.
    func resolve(_ sent: JSONValue?, stored: JSONValue?, owner: String, version: Int, workspace: String) async throws -> JSONValue {
        guard let sent else { return .null }
        let params: MultiagentParams
        do {
            params = try MultiagentParams.parse(sent, stored: stored)
        } catch {
            throw APIError.invalid(error.field ?? "multiagent", error.message, fix: error.fix)
        }
        let path = params.kind == .coordinator ? "multiagent.agents" : "multiagent.subagents.predefined_agents"
        var references: [(id: String, version: Int)] = []
        for (index, entry) in params.entries.enumerated() {
            let field = "\(path)[\(index)]"
            switch entry {
            case .current:
                references.append((owner, version))
            case .agent(let id, _) where id == owner:
                // The stored form of `self`, kept by an update that merges: the version being written.
                references.append((owner, version))
            case .agent(let id, let pinned):
                guard let row = try await store.find(.agents, id: id, workspace: workspace, version: pinned) else {
                    throw APIError.invalid(
                        field, "no agent \(id)\(pinned.map { " at version \($0)" } ?? "") in this workspace", fix: "create it first")
                }
                guard row.archivedAt == nil else {
                    throw APIError.invalid(field, "agent \(id) is archived", fix: "name an agent that is not archived")
                }
                if let nested = row.json["multiagent"], nested != .null {
                    throw APIError.invalid(
                        field, "agent \(id) coordinates threads itself; threads go one level deep", fix: "name an agent without multiagent")
                }
                references.append((row.id, row.version))
            }
        }
        return params.resolved(references)
    }
}
