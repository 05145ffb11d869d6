import DroverBrain
import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverFileStore
import DroverSelfHosted
import DroverSessionLog
import DroverWebhooks
import Foundation
import Hummingbird

/// `/v1/sessions`: create (freezes the agent in the session log), retrieve (with `stats` and
/// `usage` from the log), update, list with filters, archive and delete.
struct SessionController: Sendable {
    let store: ControlPlaneStore
    let log: SessionLog
    let inbox: SessionInbox
    let files: UploadedFiles
    let webhooks: WebhookNotifier
    /// Archiving a self-hosted session stops its work item, so its worker lets go.
    var work: WorkQueue?
    var lookup: ResourceLookup { ResourceLookup(store: store) }
    var options: APIServer.Options { files.options }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.post(use: create)
            .get(use: list)
            .get(":session_id", use: retrieve)
            .post(":session_id", use: update)
            .post(":session_id/archive", use: archive)
            .delete(":session_id", use: delete)
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(CreateSessionRequest.self, from: request, context: context)
        let (agentRow, overridden) = try await lookup.sessionAgent(reference: params.agent, workspace: context.workspace)
        let environment = try await lookup.liveEnvironment(params.environmentID, workspace: context.workspace)
        try await lookup.liveVaults(params.vaultIDs, workspace: context.workspace)
        let now = ControlPlaneStore.timestamp()
        // The brain routes a self-hosted session's sandbox tools to its environment's workers.
        let config = ControlPlaneStore.sessionEnvironmentConfig(environment)
        // Files and repositories are mounted into Drover's sandboxes; a self-hosted worker's
        // directory is the user's own.
        if config?.objectValue?["type"]?.stringValue == "self_hosted", !params.resources.isEmpty {
            throw APIError.invalid(
                "resources", "environment \(environment.id) is self_hosted: its tools run in your worker's directory, where Drover mounts nothing",
                fix: "put the files in the worker's workdir, or use a cloud environment")
        }
        let resources = try await files.resources(params.resources, workspace: context.workspace, now: now)
        // With overrides, the session keeps (and shows) the agent it runs; without, the version it names.
        // A coordinator runs the versions its roster names, whole (`expandingRoster`).
        let sessionAgent = try await store.expandingRoster(
            ControlPlaneStore.sessionAgent(overridden ?? agentRow.json), workspace: context.workspace)
        let agentShown = overridden != nil ? sessionAgent : ControlPlaneStore.agentReference(agentRow)
        let snapshot = try AgentParams.snapshot(ofSessionAgent: sessionAgent)
        let id = SessionID.make()
        // Before the session exists, so that its first turn always finds its files and tokens.
        try await files.storeMounts(resources.files, session: id, workspace: context.workspace)
        for repository in resources.repositories {
            try await store.saveRepositoryToken(repository, session: id.rawValue, workspace: context.workspace, keyring: options.vaultKeyring)
        }
        let session: [String: JSONValue] = [
            "type": "session", "id": .string(id.rawValue), "agent": agentShown,
            "environment_id": .string(environment.id),
            "metadata": params.metadata, "title": params.title.map(JSONValue.string) ?? .null,
            "created_at": .string(now), "updated_at": .string(now), "resources": .array(resources.shown),
            "vault_ids": .array(params.vaultIDs.map(JSONValue.string)),
            "outcome_evaluations": .array([]), "budget": .null, "deployment_id": .null,
        ]
        let row = ControlPlaneStore.Row(
            id: id.rawValue, workspace: context.workspace, createdAt: now, resource: JSONValue.object(session).compactJSON)
        try await store.insert(.sessions, row)
        try await ControlPlaneReplica(redis: files.sessionFiles.redis).publish(session: id.rawValue, from: store)
        _ = try await sessionLogCall {
            try await log.create(id, agent: snapshot, environment: config)
        }
        // Who started the session, for `drover report usage` per workspace.
        try await log.database?.saveSessionOrigin(
            session: id.rawValue, kind: "api", originId: context.workspace, workspaceId: context.workspace)
        await webhooks(.sessionCreated, id.rawValue, workspace: context.workspace)
        if !params.initialEvents.isEmpty {
            try await sessionLogCall { try await inbox.send(params.initialEvents, to: id) }
        }
        return jsonResponse(try await sessionJSON(row))
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        var query = SessionQuery(paging: try PageQuery(input))
        query.agentID = input.string("agent_id")
        if input.string("agent_version") != nil {
            query.agentVersion = try input.int("agent_version", default: 1, range: 1...Int(Int32.max))
        }
        if input.string("memory_store_id") != nil { throw APIError.notBuilt("filtering sessions by memory_store_id") }
        query.deploymentID = input.string("deployment_id")
        query.statuses = input.query["statuses"] ?? []
        for status in query.statuses where !SessionQuery.knownStatuses.contains(status) {
            throw APIError.invalid("statuses", "'\(status)' is not rescheduling, running, idle or terminated")
        }
        query.created = try input.createdAtRange()
        query.includeArchived = try input.bool("include_archived")
        query.ascending = try input.ascending(default: false)
        let page = try await sessions(query, workspace: context.workspace)
        return jsonResponse(DroverAPI.page(page.sessions, next: page.next))
    }

    /// A page of the workspace's sessions as the API shows them: the list endpoint and the
    /// console's Sessions page both read it, so they always agree.
    func sessions(_ query: SessionQuery, workspace: String) async throws -> (sessions: [JSONValue], next: String?) {
        var conditions: [(path: String, value: String)] = []
        if let agent = query.agentID { conditions.append(("$.agent.id", agent)) }
        if let version = query.agentVersion { conditions.append(("$.agent.version", String(version))) }
        let origins = [query.deploymentID.map { (kind: "deployment", id: $0) }, query.batchID.map { (kind: "batch", id: $0) }].compactMap { $0 }
        let paging = query.paging
        // A status filter needs each session's live status, so it filters after the query.
        let window = query.statuses.isEmpty ? (paging.offset, paging.fetch) : (0, 10_000)
        let rows = try await store.list(
            .sessions, workspace: workspace, includeArchived: query.includeArchived,
            offset: window.0, limit: window.1, ascending: query.ascending,
            created: query.created, where: conditions, origins: origins)
        if query.statuses.isEmpty {
            var sessions: [JSONValue] = []
            for row in rows.prefix(paging.limit) { sessions.append(try await sessionJSON(row)) }
            return (sessions, paging.next(fetched: rows.count))
        }
        // Each row's status alone (one read) to filter; the whole resource (its usage read from
        // the log) only for the rows of the page.
        var matching: [ControlPlaneStore.Row] = []
        for row in rows where query.statuses.contains(try await sessionStatus(row.id)) { matching.append(row) }
        let rest = matching.dropFirst(paging.offset)
        var sessions: [JSONValue] = []
        for row in rest.prefix(paging.limit) { sessions.append(try await sessionJSON(row)) }
        return (sessions, paging.next(fetched: rest.count))
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(try await sessionJSON(try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(UpdateSessionRequest.self, from: request, context: context)
        let current = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        var session = current.json
        if let title = params.title { session["title"] = title.map(JSONValue.string) ?? .null }
        if let patch = params.metadataPatch { session["metadata"] = try patchMetadata(session["metadata"], patch) }
        if let vaults = params.vaultIDs {
            try await lookup.liveVaults(vaults, workspace: context.workspace)
            session["vault_ids"] = .array(vaults.map(JSONValue.string))
        }
        session["updated_at"] = .string(ControlPlaneStore.timestamp())
        let resource = JSONValue.object(session).compactJSON
        try await store.update(.sessions, id: current.id, workspace: context.workspace, resource: resource, archivedAt: current.archivedAt)
        try await ControlPlaneReplica(redis: files.sessionFiles.redis).publish(session: current.id, from: store)
        await webhooks(.sessionUpdated, current.id, workspace: context.workspace)
        return jsonResponse(
            try await sessionJSON(
                .init(
                    id: current.id, workspace: current.workspace, archivedAt: current.archivedAt, createdAt: current.createdAt, resource: resource
                )))
    }

    @Sendable func archive(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let archivedAt = current.archivedAt ?? ControlPlaneStore.timestamp()
        try await store.update(.sessions, id: current.id, workspace: context.workspace, resource: nil, archivedAt: archivedAt)
        if current.archivedAt == nil { await webhooks(.sessionArchived, current.id, workspace: context.workspace) }
        // Its threads end with it.
        try await ThreadController.endChildren(log, of: try SessionID(current.id))
        if let work, case .string(let environment)? = current.json["environment_id"] {
            // Harmless for a cloud environment's session: it has no work queue.
            _ = try? await work.stopSession(environment: environment, session: try SessionID(current.id))
        }
        return jsonResponse(
            try await sessionJSON(
                .init(
                    id: current.id, workspace: current.workspace, archivedAt: archivedAt, createdAt: current.createdAt, resource: current.resource
                )))
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        if try await sessionStatus(current.id) == "running" {
            throw APIError(
                .conflict, "invalid_request_error",
                "session \(current.id) is running. Fix: send a user.interrupt event and wait for session.status_idle, then delete")
        }
        let deleted = try await store.delete(.sessions, id: current.id, workspace: context.workspace)
        try await store.deleteRepositoryTokens(session: current.id)
        // Its files' manifests go with it; blobs other sessions share stay until they expire.
        try await files.sessionFiles.remove(try SessionID(current.id))
        try await ControlPlaneReplica(redis: files.sessionFiles.redis).remove(session: current.id)
        if deleted { await webhooks(.sessionDeleted, current.id, workspace: context.workspace) }
        return jsonResponse(.object(["id": .string(current.id), "type": "session_deleted"]))
    }

    func sessionStatus(_ id: String) async throws -> String {
        let session = try SessionID(id)
        if let meta = try await log.meta(session) { return meta.status }
        return try await log.database?.session(id)?.status ?? "idle"
    }

    /// The stored resource with the live parts: `status`, `usage` (the last `session.usage`
    /// event) and `stats`.
    func sessionJSON(_ row: ControlPlaneStore.Row) async throws -> JSONValue {
        var session = row.json
        session["agent"] = try await store.sessionAgent(session["agent"], workspace: row.workspace)
        let id = try SessionID(row.id)
        session["status"] = .string(try await sessionStatus(row.id))
        var usage = try await ThreadController.usage(log, of: id) ?? [:]
        // A coordinator's session counts its threads' tokens too.
        if case .object(let agent) = session["agent"] ?? .null, let multiagent = agent["multiagent"], multiagent != .null {
            for (key, count) in try await ThreadController.childrenUsage(log, of: id) where count > 0 {
                usage[key] = .number((usage[key]?.doubleValue ?? 0) + count)
            }
        }
        session["usage"] = .object(usage)
        let created = ISO8601DateFormatter.withFractions.date(from: row.createdAt) ?? Date()
        session["stats"] = .object([
            "duration_seconds": .number((Date().timeIntervalSince(created) * 1000).rounded() / 1000),
            "active_seconds": usage["active_seconds"] ?? .number(0),
        ])
        return .object(session)
    }
}

/// What a session list asks for: the API's query parameters, and the console's filters.
struct SessionQuery {
    static let knownStatuses = ["rescheduling", "running", "idle", "terminated"]
    var paging: PageQuery
    var agentID: String?
    var agentVersion: Int?
    var deploymentID: String?
    /// Only the console asks for this one; the SDK has no batches.
    var batchID: String?
    var statuses: [String] = []
    var created = CreatedAtRange()
    var includeArchived = false
    var ascending = false
}
