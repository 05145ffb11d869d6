import DroverBrain
import DroverCore
import DroverDatabase
import Foundation

/// Finds the caller's resources by id, scoped to its workspace (I7, docs/ARCHITECTURE.md): a
/// malformed id is a 400 naming the parameter, another workspace's id a 404. Shared by the
/// controllers, which refer to each other's resources (a session names an agent and an
/// environment, a deployment the same).
struct ResourceLookup: Sendable {
    let store: ControlPlaneStore

    func agent(_ id: String, workspace: String, version: Int? = nil) async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "agent", parameter: "agent_id")
        guard let row = try await store.find(.agents, id: id, workspace: workspace, version: version) else {
            throw APIError.notFound("agent", version.map { "\(id) version \($0)" } ?? id)
        }
        return row
    }

    func environment(_ id: String, workspace: String) async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "env", parameter: "environment_id")
        guard let row = try await store.find(.environments, id: id, workspace: workspace) else {
            throw APIError.notFound("environment", id, errorCode: "environment_not_found")
        }
        return row
    }

    /// An environment new work may use: not archived.
    func liveEnvironment(_ id: String, workspace: String) async throws -> ControlPlaneStore.Row {
        let environment = try await self.environment(id, workspace: workspace)
        guard environment.archivedAt == nil else {
            throw APIError(
                .badRequest, "invalid_request_error", "environment_id: environment \(environment.id) is archived", errorCode: "environment_archived")
        }
        return environment
    }

    /// A session's agent: a live agent, and for `{"type": "agent_with_overrides", ...}` the
    /// agent's resource with the overrides applied, checked as an update of it would be. The
    /// agent itself is unchanged.
    func sessionAgent(reference value: JSONValue?, workspace: String) async throws -> (row: ControlPlaneStore.Row, overridden: [String: JSONValue]?) {
        guard case .object(var fields)? = value, fields["type"]?.stringValue == "agent_with_overrides" else {
            return (try await liveAgent(reference: value, workspace: workspace), nil)
        }
        try fields.rejectUnknown(["type", "id", "version", "mcp_servers", "model", "skills", "system", "tools"], prefix: "agent")
        var reference: [String: JSONValue] = ["type": "agent", "id": fields["id"] ?? .null]
        if let version = fields["version"] { reference["version"] = version }
        let row = try await liveAgent(reference: .object(reference), workspace: workspace)
        for key in ["type", "id", "version"] { fields.removeValue(forKey: key) }
        return (row, try Self.applying(fields, to: row.json))
    }

    /// The agent with the overrides, or a 400 naming the override's field under `agent`.
    private static func applying(_ overrides: [String: JSONValue], to agent: [String: JSONValue]) throws -> [String: JSONValue] {
        var changed = agent
        do throws(FieldError) {
            try AgentParams(overrides).apply(to: &changed)
        } catch {
            throw APIError.invalid("agent." + (error.field ?? "overrides"), error.message, fix: error.fix)
        }
        return changed
    }

    /// An agent new work may run: not archived.
    func liveAgent(reference value: JSONValue?, workspace: String) async throws -> ControlPlaneStore.Row {
        let row = try await agent(reference: value, workspace: workspace)
        guard row.archivedAt == nil else { throw APIError.invalid("agent", "agent \(row.id) is archived", fix: "use an agent that is not archived") }
        return row
    }

    func vault(_ id: String, workspace: String) async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "vlt", parameter: "vault_id")
        guard let row = try await store.find(.vaults, id: id, workspace: workspace) else { throw APIError.notFound("vault", id) }
        return row
    }

    /// Checks that every vault exists in the workspace and is not archived.
    func liveVaults(_ ids: [String], workspace: String) async throws {
        for (index, id) in ids.enumerated() {
            guard let row = try await store.find(.vaults, id: id, workspace: workspace) else { throw APIError.notFound("vault", id) }
            guard row.archivedAt == nil else {
                throw APIError.invalid("vault_ids[\(index)]", "vault \(id) is archived", fix: "use a vault that is not archived")
            }
        }
    }

    func session(_ id: String, workspace: String) async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "sesn", parameter: "session_id")
        guard let row = try await store.find(.sessions, id: id, workspace: workspace) else { throw APIError.notFound("session", id) }
        return row
    }

    /// The agent a new session or a deployment runs: an id (latest version) or
    /// `{"type": "agent", "id", "version"}`.
    func agent(reference value: JSONValue?, workspace: String) async throws -> ControlPlaneStore.Row {
        switch value {
        case .string(let id)?:
            return try await agent(id, workspace: workspace)
        case .object(let fields)?:
            guard fields["type"]?.stringValue == "agent" else {
                throw APIError.invalid(
                    "agent.type", "'\(fields["type"]?.stringValue ?? "missing")' is not supported",
                    fix: "use {\"type\": \"agent\", \"id\": ..., \"version\": ...}, or agent_with_overrides for a session")
            }
            try fields.rejectUnknown(["type", "id", "version"])
            guard let id = fields["id"]?.stringValue else { throw APIError.invalid("agent.id", "the field is required") }
            return try await agent(id, workspace: workspace, version: try fields.version("version", named: "agent.version", nullable: true))
        case nil, .null?:
            throw APIError.invalid("agent", "the field is required", fix: "pass an agent id or {\"type\": \"agent\", \"id\": ...}")
        case let other?:
            throw APIError.invalid("agent", "must be an agent id or an object, got \(other.kindName)")
        }
    }
}

/// Id checks: a malformed id is a 400 naming the parameter, not a lookup.
enum ResourceID {
    static func check(_ id: String, prefix: String, parameter: String) throws -> String {
        let allowed = id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45 }
        guard id.hasPrefix(prefix + "_"), id.utf8.count <= 128, allowed else {
            throw APIError.invalid(
                parameter, "'\(id.prefix(80))' is not a valid id", fix: "pass an id that starts with \(prefix)_, as returned by the API")
        }
        return id
    }
}

extension ControlPlaneStore.Row {
    /// For an environment's row: whether its sessions' toolsets run on the user's own workers.
    var isSelfHostedEnvironment: Bool { json["config"]?.objectValue?["type"]?.stringValue == "self_hosted" }

    /// The stored JSON with the archive time the row holds.
    var json: [String: JSONValue] { shownResource(resource, archivedAt: archivedAt) }
}

extension ControlPlaneStore.CredentialRow {
    /// The credential as the API shows it, with the archive time the row holds: never its secret,
    /// which is not in the resource.
    var json: [String: JSONValue] { shownResource(resource, archivedAt: archivedAt) }
}

/// A stored resource with the archive time of its row: archiving sets the column only.
private func shownResource(_ resource: String, archivedAt: String?) -> [String: JSONValue] {
    var object = (try? JSONValue.parse(resource))?.objectValue ?? [:]
    object["archived_at"] = archivedAt.map(JSONValue.string) ?? .null
    return object
}

extension ControlPlaneStore {
    /// Stores a new resource: its id is the resource's own `id`.
    func insert(_ table: Table, resource: [String: JSONValue], workspace: String, createdAt: String) async throws {
        try await insert(
            table,
            .init(id: resource["id"]?.stringValue ?? "", workspace: workspace, createdAt: createdAt, resource: JSONValue.object(resource).compactJSON)
        )
    }

    /// Archives a resource (archiving twice keeps the first time) and returns it as the API shows it.
    func archive(_ table: Table, _ current: Row, workspace: String) async throws -> [String: JSONValue] {
        let archivedAt = current.archivedAt ?? ControlPlaneStore.timestamp()
        try await update(table, id: current.id, workspace: workspace, resource: nil, archivedAt: archivedAt)
        var resource = current.json
        resource["archived_at"] = .string(archivedAt)
        return resource
    }
}
