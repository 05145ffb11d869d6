import DroverBrain
import DroverCore
import DroverDatabase
import DroverWebhooks
import Hummingbird

/// `/v1/agents`: create, retrieve, update (a new version, with an optimistic `version` check),
/// list, archive, and `/versions`.
struct AgentController: Sendable {
    let store: ControlPlaneStore
    let webhooks: WebhookNotifier
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.post(use: create)
            .get(use: list)
            .get(":agent_id", use: retrieve)
            .post(":agent_id", use: update)
            .post(":agent_id/archive", use: archive)
            .get(":agent_id/versions", use: versions)
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(CreateAgentRequest.self, from: request, context: context)
        let now = ControlPlaneStore.timestamp()
        var agent = try params.agent.resource(id: Identifier.make(prefix: "agent"), now: now)
        if let multiagent = params.agent.multiagent {
            agent["multiagent"] = try await MultiagentResolution(store: store).resolve(
                multiagent, stored: nil, owner: agent["id"]?.stringValue ?? "", version: 1, workspace: context.workspace)
        }
        try await store.insert(.agents, resource: agent, workspace: context.workspace, createdAt: now)
        await webhooks(.agentCreated, agent["id"]?.stringValue ?? "", workspace: context.workspace)
        return jsonResponse(.object(agent))
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let paging = try PageQuery(input)
        let rows = try await store.list(
            .agents, workspace: context.workspace, includeArchived: try input.bool("include_archived"), offset: paging.offset, limit: paging.fetch,
            created: try input.createdAtRange())
        return jsonResponse(paging.page(rows) { .object($0.json) })
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let version = try input.string("version").map { _ in try input.int("version", default: 1, range: 1...Int(Int32.max)) }
        return jsonResponse(
            .object(try await lookup.agent(context.parameters.require("agent_id"), workspace: context.workspace, version: version).json))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(UpdateAgentRequest.self, from: request, context: context)
        let current = try await lookup.agent(context.parameters.require("agent_id"), workspace: context.workspace)
        if let whole = params.version {
            guard whole == current.version else {
                throw APIError(
                    .conflict, "invalid_request_error",
                    "version: the agent is at version \(current.version), not \(whole). Fix: retrieve the agent and retry with its current version")
            }
        }
        guard current.archivedAt == nil else {
            throw APIError.invalid("agent_id", "agent \(current.id) is archived and cannot be updated", fix: "create a new agent")
        }
        var agent = current.json
        try params.changes.apply(to: &agent)
        if let multiagent = params.changes.multiagent {
            agent["multiagent"] = try await MultiagentResolution(store: store).resolve(
                multiagent, stored: current.json["multiagent"], owner: current.id, version: current.version + 1, workspace: context.workspace)
        }
        if agent == current.json { return jsonResponse(.object(agent)) }
        let now = ControlPlaneStore.timestamp()
        agent["version"] = .number(Double(current.version + 1))
        agent["updated_at"] = .string(now)
        let row = ControlPlaneStore.Row(
            id: current.id, workspace: context.workspace, version: current.version + 1, createdAt: current.createdAt,
            resource: JSONValue.object(agent).compactJSON)
        guard try await store.insertAgentVersion(row, expectedVersion: current.version) else {
            throw APIError(.conflict, "invalid_request_error", "version: the agent changed while this update was applied. Fix: retrieve it and retry")
        }
        await webhooks(.agentUpdated, current.id, workspace: context.workspace)
        return jsonResponse(.object(agent))
    }

    @Sendable func archive(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.agent(context.parameters.require("agent_id"), workspace: context.workspace)
        let archived = try await store.archive(.agents, current, workspace: context.workspace)
        if current.archivedAt == nil { await webhooks(.agentArchived, current.id, workspace: context.workspace) }
        return jsonResponse(.object(archived))
    }

    @Sendable func versions(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.agent(context.parameters.require("agent_id"), workspace: context.workspace)
        let paging = try PageQuery(RequestInput(request))
        let rows = try await store.agentVersions(id: current.id, workspace: context.workspace, offset: paging.offset, limit: paging.fetch)
        return jsonResponse(paging.page(rows) { .object($0.json) })
    }
}
