import DroverBrain
import DroverCore
import DroverDatabase
import DroverQueue
import DroverSchedule
import DroverSessionLog
import DroverWebhooks
import Foundation
import Hummingbird

/// `/v1/deployments` (create, retrieve, update, list, archive, pause, unpause, run) and
/// `/v1/deployment_runs` (list, retrieve): thin handlers over `DeploymentStore` and
/// `DeploymentFirer`. A deployment belongs to the caller's workspace; another's id is a 404 (I7, docs/ARCHITECTURE.md).
/// Local mode's workspace is `wrkspc_default`, the one `drover apply` writes, so a local user sees
/// the deployments of `Schedules/`.
struct DeploymentController: Sendable {
    let store: ControlPlaneStore
    let log: SessionLog
    let queue: TaskQueue
    let launchBatch: (@Sendable (DeploymentFirer.BatchLaunch) async throws -> Void)?
    let webhooks: WebhookNotifier
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(deployments: RouterGroup<APIRequestContext>, runs: RouterGroup<APIRequestContext>) {
        deployments.post(use: create)
            .get(use: list)
            .get(":deployment_id", use: retrieve)
            .post(":deployment_id", use: update)
            .post(":deployment_id/archive", use: archive)
            .post(":deployment_id/pause", use: pause)
            .post(":deployment_id/unpause", use: unpause)
            .post(":deployment_id/run", use: run)
        runs.get(use: listRuns).get(":deployment_run_id", use: retrieveRun)
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(CreateDeploymentRequest.self, from: request, context: context)
        try await self.checkNameFree(params.name, workspace: context.workspace)
        let agent = try await self.deploymentAgent(params.agent, workspace: context.workspace)
        let environment = try await lookup.liveEnvironment(params.environmentID, workspace: context.workspace)
        try await lookup.liveVaults(params.vaultIDs, workspace: context.workspace)
        let now = Date()
        let stamp = ControlPlaneStore.timestamp(now)
        let id = Identifier.make(prefix: "depl", now: now)
        var spec = DeploymentSpec(
            agentID: agent.row.id, agentVersion: agent.row.version, agent: ControlPlaneStore.agentReference(agent.row),
            agentSnapshot: agent.snapshot, environment: .object(["id": .string(environment.id)]), initialEvents: params.initialEvents,
            expression: params.schedule?.expression, timezone: params.schedule?.timezone, description: params.description,
            metadata: params.metadata.stringMap)
        spec.vaultIDs = params.vaultIDs
        let row = DeploymentRow(
            id: id, workspaceID: context.workspace, name: params.name, status: "active", createdAt: stamp, updatedAt: stamp,
            archivedAt: nil, lastRunAt: nil, fireAfter: now.timeIntervalSince1970, specHash: DeploymentParams.apiSpecHash,
            resource: DeploymentParams.resource(id: id, name: params.name, spec: spec, environmentID: environment.id, createdAt: stamp).compactJSON,
            spec: spec.encoded)
        try await store.database.saveDeployment(row)
        await webhooks(.deploymentCreated, id, workspace: context.workspace)
        return jsonResponse(self.deployments(context.workspace).resource(row, now: now))
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let paging = try PageQuery(input)
        let includeArchived = try input.bool("include_archived")
        let status = input.string("status")
        if let status, !["active", "paused"].contains(status) { throw APIError.invalid("status", "'\(status)' is not active or paused") }
        if status != nil, includeArchived {
            throw APIError.invalid("status", "cannot be combined with include_archived", fix: "send one of status and include_archived")
        }
        let agentID = input.string("agent_id")
        let after = try DeploymentParams.date(input, "created_at[gte]")
        let before = try DeploymentParams.date(input, "created_at[lte]")
        let store = self.deployments(context.workspace)
        let now = Date()
        let matching = try await store.list(includeArchived: includeArchived)
            .filter { row in
                let resource = JSONValue.decode(row.resource).objectValue ?? [:]
                let created = DeploymentParams.date(.string(row.createdAt)) ?? now
                return (status == nil || row.status == status)
                    && (agentID == nil || resource["agent"]?.objectValue?["id"]?.stringValue == agentID)
                    && (after.map { created >= $0 } ?? true) && (before.map { created <= $0 } ?? true)
            }
            .sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        return jsonResponse(paging.page(of: matching) { store.resource($0, now: now) })
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await self.deployment(context.parameters.require("deployment_id"), workspace: context.workspace)
        return jsonResponse(self.deployments(context.workspace).resource(row))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(UpdateDeploymentRequest.self, from: request, context: context)
        var row = try await self.liveDeployment(context.parameters.require("deployment_id"), workspace: context.workspace, action: "updated")
        guard var spec = DeploymentSpec.decode(row.spec), var resource = JSONValue.decode(row.resource).objectValue else {
            throw APIError(.internalServerError, "api_error", "deployment \(row.id) has no stored spec")
        }
        if let file = spec.sourceFile {
            throw APIError.invalid(
                "deployment_id", "deployment \(row.id) comes from the schedule file \(file), which `drover apply` keeps it equal to",
                fix: "edit \(file) and run `drover apply`")
        }
        let now = Date()
        if let name = params.name {
            if name != row.name { try await self.checkNameFree(name, workspace: context.workspace) }
            row.name = name
            resource["name"] = .string(name)
        }
        if let description = params.description {
            spec.description = description
            resource["description"] = description.map(JSONValue.string) ?? .null
        }
        if params.agent != nil {
            let agent = try await self.deploymentAgent(params.agent, workspace: context.workspace)
            spec.agentID = agent.row.id
            spec.agentVersion = agent.row.version
            spec.agent = ControlPlaneStore.agentReference(agent.row)
            spec.agentSnapshot = agent.snapshot
            resource["agent"] = spec.agent
        }
        if let id = params.environmentID {
            let environment = try await lookup.liveEnvironment(id, workspace: context.workspace)
            spec.environment = .object(["id": .string(environment.id)])
            resource["environment_id"] = .string(environment.id)
        }
        if let events = params.initialEvents {
            spec.initialEvents = events
            resource["initial_events"] = .array(events)
        }
        if let vaults = params.vaultIDs {
            try await lookup.liveVaults(vaults, workspace: context.workspace)
            spec.vaultIDs = vaults
            resource["vault_ids"] = .array(vaults.map(JSONValue.string))
        }
        if let patch = params.metadataPatch {
            let merged = try patchMetadata(resource["metadata"], patch)
            resource["metadata"] = merged
            spec.metadata = merged.stringMap
        }
        if let schedule = params.schedule {
            if schedule?.expression != spec.expression || schedule?.timezone != spec.timezone {
                // A new schedule owes nothing from before the change.
                row.fireAfter = max(row.fireAfter, now.timeIntervalSince1970)
            }
            spec.expression = schedule?.expression
            spec.timezone = schedule?.timezone
            resource["schedule"] = schedule?.json ?? .null
        }
        let stamp = ControlPlaneStore.timestamp(now)
        resource["updated_at"] = .string(stamp)
        row.updatedAt = stamp
        row.specHash = DeploymentParams.apiSpecHash
        row.spec = spec.encoded
        row.resource = JSONValue.object(resource).compactJSON
        try await store.database.saveDeployment(row)
        await webhooks(.deploymentUpdated, row.id, workspace: context.workspace)
        return jsonResponse(self.deployments(context.workspace).resource(row, now: now))
    }

    @Sendable func archive(_ request: Request, context: APIRequestContext) async throws -> Response {
        var row = try await self.deployment(context.parameters.require("deployment_id"), workspace: context.workspace)
        if row.archivedAt == nil {
            let stamp = ControlPlaneStore.timestamp()
            row.archivedAt = stamp
            row.updatedAt = stamp
            // As in the SDK: an archived deployment reports `active` with `archived_at` set.
            row.status = "active"
            try await store.database.saveDeployment(row)
            await webhooks(.deploymentArchived, row.id, workspace: context.workspace)
        }
        return jsonResponse(self.deployments(context.workspace).resource(row))
    }

    @Sendable func pause(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(try await pause(context.parameters.require("deployment_id"), workspace: context.workspace))
    }

    @Sendable func unpause(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(try await unpause(context.parameters.require("deployment_id"), workspace: context.workspace))
    }

    @Sendable func run(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(try await run(context.parameters.require("deployment_id"), workspace: context.workspace))
    }

    // The actions themselves, which the console's buttons call too.

    func pause(_ id: String, workspace: String) async throws -> JSONValue {
        let row = try await self.liveDeployment(id, workspace: workspace, action: "paused")
        let store = self.deployments(workspace)
        let paused = try await deploymentCall { try await store.pause(row.id) }
        if row.status != "paused" { await webhooks(.deploymentPaused, row.id, workspace: workspace) }
        return store.resource(paused)
    }

    func unpause(_ id: String, workspace: String) async throws -> JSONValue {
        let row = try await self.liveDeployment(id, workspace: workspace, action: "unpaused")
        let store = self.deployments(workspace)
        let active = try await deploymentCall { try await store.unpause(row.id) }
        if row.status == "paused" { await webhooks(.deploymentUnpaused, row.id, workspace: workspace) }
        return store.resource(active)
    }

    func run(_ id: String, workspace: String) async throws -> JSONValue {
        let row = try await self.liveDeployment(id, workspace: workspace, action: "run")
        var firer = DeploymentFirer(store: self.deployments(workspace), sessionLog: log, queue: queue)
        firer.launchBatch = launchBatch
        firer.webhooks = webhooks.outbox
        return try await deploymentCall { try await sessionLogCall { try await firer.fire(row, scheduledAt: nil, now: Date()) } }
    }

    @Sendable func listRuns(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let paging = try PageQuery(input, maxLimit: 1000)
        let trigger = input.string("trigger_type")
        if let trigger, !["schedule", "manual"].contains(trigger) {
            throw APIError.invalid("trigger_type", "'\(trigger)' is not schedule or manual")
        }
        let hasError = try input.string("has_error").map { _ in try input.bool("has_error") }
        let gt = try DeploymentParams.date(input, "created_at[gt]"), gte = try DeploymentParams.date(input, "created_at[gte]")
        let lt = try DeploymentParams.date(input, "created_at[lt]"), lte = try DeploymentParams.date(input, "created_at[lte]")
        // An unknown deployment_id is an empty page, as the SDK documents.
        let runs = try await store.database.deploymentRuns(
            deploymentID: input.string("deployment_id"), workspace: context.workspace, limit: 100_000
        )
        .map(JSONValue.decode)
        .filter { run in
            let fields = run.objectValue ?? [:]
            let created = DeploymentParams.date(fields["created_at"]) ?? .distantPast
            return (trigger == nil || fields["trigger_context"]?.objectValue?["type"]?.stringValue == trigger)
                && (hasError.map { $0 ? fields["error"] != .null : fields["session_id"] != .null } ?? true)
                && (gt.map { created > $0 } ?? true) && (gte.map { created >= $0 } ?? true)
                && (lt.map { created < $0 } ?? true) && (lte.map { created <= $0 } ?? true)
        }
        return jsonResponse(paging.page(of: runs) { $0 })
    }

    @Sendable func retrieveRun(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try ResourceID.check(context.parameters.require("deployment_run_id"), prefix: "drun", parameter: "deployment_run_id")
        guard let run = try await store.database.deploymentRun(id: id, workspace: context.workspace) else {
            throw APIError.notFound("deployment run", id)
        }
        return jsonResponse(JSONValue.decode(run))
    }

    func deployments(_ workspace: String) -> DeploymentStore {
        DeploymentStore(database: store.database, workspace: workspace)
    }

    func deployment(_ id: String, workspace: String) async throws -> DeploymentRow {
        let id = try ResourceID.check(id, prefix: "depl", parameter: "deployment_id")
        guard let row = try await store.database.deployment(workspace: workspace, nameOrID: id), row.id == id else {
            throw APIError.notFound("deployment", id)
        }
        return row
    }

    private func liveDeployment(_ id: String, workspace: String, action: String) async throws -> DeploymentRow {
        let row = try await deployment(id, workspace: workspace)
        guard row.archivedAt == nil else {
            throw APIError.invalid("deployment_id", "deployment \(row.id) is archived and cannot be \(action)", fix: "create a new deployment")
        }
        return row
    }

    private func checkNameFree(_ name: String, workspace: String) async throws {
        if let taken = try await store.database.deployment(workspace: workspace, nameOrID: name), taken.name == name, taken.archivedAt == nil {
            throw APIError(
                .conflict, "invalid_request_error",
                "name: deployment \(taken.id) is already named '\(name)'. Fix: choose another name, or archive that deployment")
        }
    }

    /// The agent a deployment pins: an id (its latest version) or `{"type": "agent", "id", "version"}`,
    /// and what its sessions will run, checked as a session's agent is.
    private func deploymentAgent(_ value: JSONValue?, workspace: String) async throws -> (row: ControlPlaneStore.Row, snapshot: AgentSnapshot) {
        let row = try await lookup.liveAgent(reference: value, workspace: workspace)
        return (row, try AgentParams.snapshot(ofSessionAgent: ControlPlaneStore.sessionAgent(row.json)))
    }
}

/// Runs a `DeploymentStore`/`DeploymentFirer` call, turning its errors into 400s naming the field.
func deploymentCall<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as FieldError {
        throw APIError.invalid(error.field ?? "deployment_id", error.message, fix: error.fix)
    }
}
