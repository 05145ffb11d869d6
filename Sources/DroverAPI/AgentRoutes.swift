import DroverBrain
import DroverCore
import DroverDatabase
import Hummingbird

/// `/v1/agents`: create, retrieve, update (a new version, with an optimistic `version` check),
/// list, archive, and `/versions`.
extension APIServer {
    func addAgentRoutes(_ router: Router<APIRequestContext>) {
        router.post("/v1/agents") { request, context in
            let params = try await RequestInput.body(request, context: context)
            let now = ControlPlaneStore.timestamp()
            let agent = try AgentParams.create(id: Identifier.make(prefix: "agent"), params: params, now: now)
            try await self.store.insert(
                .agents,
                .init(id: agent["id"]!.stringValue!, workspace: context.workspace, createdAt: now, resource: JSONValue.object(agent).compactJSON))
            return jsonResponse(.object(agent))
        }
        router.get("/v1/agents") { request, context in
            let input = RequestInput(request)
            let limit = try input.int("limit", default: 20, range: 1...100)
            let offset = try input.pageOffset()
            let rows = try await self.store.list(
                .agents, workspace: context.workspace, includeArchived: try input.bool("include_archived"), offset: offset, limit: limit + 1,
                createdAfter: input.string("created_at[gte]"), createdBefore: input.string("created_at[lte]"))
            return jsonResponse(page(rows.prefix(limit).map { .object($0.json) }, next: rows.count > limit ? "page_\(offset + limit)" : nil))
        }
        router.get("/v1/agents/:agent_id") { request, context in
            let input = RequestInput(request)
            let version = try input.string("version").map { _ in try input.int("version", default: 1, range: 1...Int(Int32.max)) }
            return jsonResponse(
                .object(try await self.agent(context.parameters.require("agent_id"), workspace: context.workspace, version: version).json))
        }
        router.post("/v1/agents/:agent_id") { request, context in
            let params = try await RequestInput.body(request, context: context)
            try params.rejectUnknown(AgentParams.updateFields)
            let current = try await self.agent(context.parameters.require("agent_id"), workspace: context.workspace)
            if let whole = try params.version("version", named: "version", nullable: false) {
                guard whole == current.version else {
                    throw APIError(
                        .conflict, "invalid_request_error",
                        "version: the agent is at version \(current.version), not \(whole). Fix: retrieve the agent and retry with its current version"
                    )
                }
            }
            guard current.archivedAt == nil else {
                throw APIError.invalid("agent_id", "agent \(current.id) is archived and cannot be updated", fix: "create a new agent")
            }
            var agent = current.json
            var changes = params
            changes.removeValue(forKey: "version")
            try AgentParams.apply(changes, to: &agent)
            if agent == current.json { return jsonResponse(.object(agent)) }
            let now = ControlPlaneStore.timestamp()
            agent["version"] = .number(Double(current.version + 1))
            agent["updated_at"] = .string(now)
            let row = ControlPlaneStore.Row(
                id: current.id, workspace: context.workspace, version: current.version + 1, createdAt: current.createdAt,
                resource: JSONValue.object(agent).compactJSON)
            guard try await self.store.insertAgentVersion(row, expectedVersion: current.version) else {
                throw APIError(
                    .conflict, "invalid_request_error", "version: the agent changed while this update was applied. Fix: retrieve it and retry")
            }
            return jsonResponse(.object(agent))
        }
        router.post("/v1/agents/:agent_id/archive") { _, context in
            let current = try await self.agent(context.parameters.require("agent_id"), workspace: context.workspace)
            let archivedAt = current.archivedAt ?? ControlPlaneStore.timestamp()
            try await self.store.update(.agents, id: current.id, workspace: context.workspace, resource: nil, archivedAt: archivedAt)
            var agent = current.json
            agent["archived_at"] = .string(archivedAt)
            return jsonResponse(.object(agent))
        }
        router.get("/v1/agents/:agent_id/versions") { request, context in
            let current = try await self.agent(context.parameters.require("agent_id"), workspace: context.workspace)
            let input = RequestInput(request)
            let limit = try input.int("limit", default: 20, range: 1...100)
            let offset = try input.pageOffset()
            let rows = try await self.store.agentVersions(id: current.id, workspace: context.workspace, offset: offset, limit: limit + 1)
            return jsonResponse(page(rows.prefix(limit).map { .object($0.json) }, next: rows.count > limit ? "page_\(offset + limit)" : nil))
        }
    }

    func agent(_ id: String, workspace: String, version: Int? = nil) async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "agent", parameter: "agent_id")
        guard let row = try await store.find(.agents, id: id, workspace: workspace, version: version) else {
            throw APIError.notFound("agent", version.map { "\(id) version \($0)" } ?? id)
        }
        return row
    }
}
