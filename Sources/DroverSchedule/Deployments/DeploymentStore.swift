import Crypto
import DroverCore
import DroverDatabase
import Foundation

/// Deployments and their runs in SQLite, served in the SDK's `BetaManagedAgentsDeployment` and
/// `BetaManagedAgentsDeploymentRun` shapes, so that an HTTP API needs only thin handlers.
public final class DeploymentStore: Sendable {
    /// The workspace deployments from `Schedules/` belong to until tenants exist.
    public static let defaultWorkspace = "wrkspc_default"

    public let database: MirrorDatabase
    public let workspace: String

    public init(database: MirrorDatabase, workspace: String = DeploymentStore.defaultWorkspace) {
        self.database = database
        self.workspace = workspace
    }

    // MARK: Reading

    public func list(includeArchived: Bool = false) async throws -> [DeploymentRow] {
        try await database.deployments(workspace: workspace, includeArchived: includeArchived)
    }

    public func find(_ nameOrID: String) async throws -> DeploymentRow {
        guard let row = try await database.deployment(workspace: workspace, nameOrID: nameOrID) else {
            throw FieldError(
                field: "deployment", message: "'\(nameOrID)' is not a deployment",
                fix: "list them with `drover deployments list`, or run `drover apply Schedules/`")
        }
        return row
    }

    /// The deployment as the SDK shows it, with `upcoming_runs_at` (5, from `now`) and
    /// `last_run_at` computed.
    public func resource(_ row: DeploymentRow, now: Date = Date()) -> JSONValue {
        guard case .object(var fields) = JSONValue.decode(row.resource) else { return .null }
        fields["status"] = .string(row.status)
        fields["paused_reason"] =
            row.status == "paused"
            ? (row.pausedReason.map(JSONValue.decode) ?? .object(["type": .string("manual")]))
            : .null
        fields["archived_at"] = row.archivedAt.map(JSONValue.string) ?? .null
        fields["updated_at"] = .string(row.updatedAt)
        if case .object(var schedule)? = fields["schedule"], let spec = decodeSpec(row.spec), let cron = spec.cron() {
            let upcoming = row.archivedAt == nil ? cron.upcoming(after: now, count: 5) : []
            schedule["upcoming_runs_at"] = .array(upcoming.map { .string(Timestamp.seconds($0)) })
            schedule["last_run_at"] = row.lastRunAt.map(JSONValue.string) ?? .null
            fields["schedule"] = .object(schedule)
        }
        return .object(fields)
    }

    public func runs(_ nameOrID: String?, limit: Int = 100) async throws -> [JSONValue] {
        let id = try await nameOrID.asyncMap { try await find($0).id }
        return try await database.deploymentRuns(deploymentID: id, workspace: workspace, limit: limit).map(JSONValue.decode)
    }

    // MARK: Pause

    public func pause(_ nameOrID: String, now: Date = Date()) async throws -> DeploymentRow {
        var row = try await find(nameOrID)
        guard row.archivedAt == nil else { throw archived(row) }
        if row.status != "paused" { row.pausedReason = nil }
        row.status = "paused"
        row.updatedAt = Timestamp.string(now)
        try await database.saveDeployment(row)
        return row
    }

    /// As the SDK does when a scheduled fire records a run that failed for a reason retrying
    /// cannot fix (its environment or agent archived or gone): the deployment pauses, and its
    /// `paused_reason` carries the error's type until it is unpaused.
    public func pauseForError(_ id: String, errorType: String, now: Date = Date()) async throws {
        var row = try await find(id)
        guard row.archivedAt == nil, row.status == "active" else { return }
        row.status = "paused"
        row.pausedReason = JSONValue.object(["type": .string("error"), "error": .object(["type": .string(errorType)])]).compactJSON
        row.updatedAt = Timestamp.string(now)
        try await database.saveDeployment(row)
    }

    /// Unpausing owes nothing for the paused stretch: only occurrences after `now` fire.
    public func unpause(_ nameOrID: String, now: Date = Date()) async throws -> DeploymentRow {
        var row = try await find(nameOrID)
        guard row.archivedAt == nil else { throw archived(row) }
        if row.status == "paused" {
            row.status = "active"
            row.fireAfter = max(row.fireAfter, now.timeIntervalSince1970)
            row.updatedAt = Timestamp.string(now)
            try await database.saveDeployment(row)
        }
        return row
    }

    private func archived(_ row: DeploymentRow) -> FieldError {
        FieldError(field: "deployment", message: "'\(row.name)' (\(row.id)) is archived", fix: "add its schedule file back and run `drover apply`")
    }

    // MARK: Apply

    public struct ApplyReport: Sendable, Equatable, Codable {
        public var created: [String] = []
        public var updated: [String] = []
        public var unchanged: [String] = []
        public var archived: [String] = []
        /// Deployments the file says to run that were paused by hand; apply leaves them paused.
        public var pausedByHand: [String] = []

        public var isEmpty: Bool { created.isEmpty && updated.isEmpty && archived.isEmpty }

        enum CodingKeys: String, CodingKey {
            case created, updated, unchanged, archived, pausedByHand = "paused_by_hand"
        }
    }

    /// Makes the stored deployments match `files`: creates, updates (a new agent version when
    /// the agent changed), and archives deployments whose file is gone. With `dryRun`, only
    /// reports what it would do.
    public func apply(_ files: [ScheduleFile], dryRun: Bool = false, now: Date = Date()) async throws -> ApplyReport {
        var report = ApplyReport()
        let existing = try await list()
        let stamp = Timestamp.string(now)
        for file in files {
            let hash = Self.hash(file)
            guard var row = existing.first(where: { $0.name == file.name }), let old = decodeSpec(row.spec) else {
                report.created.append(file.name)
                if !dryRun { try await create(file, hash: hash, now: now) }
                continue
            }
            if row.specHash == hash {
                report.unchanged.append(file.name)
                if row.status == "paused" && !file.paused { report.pausedByHand.append(file.name) }
                continue
            }
            report.updated.append(file.name)
            guard !dryRun else { continue }
            var spec = try await makeSpec(file, agentID: old.agentID, agentVersion: old.agentVersion, now: now)
            if spec.agent != old.agent {
                spec.agentVersion = old.agentVersion + 1
                try await database.saveAgentVersion(
                    id: spec.agentID, version: spec.agentVersion, workspaceID: workspace,
                    createdAt: stamp, resource: agentResource(spec, now: now).compactJSON)
            }
            if file.paused { row.status = "paused" } else if old.pausedInFile { row.status = "active" }
            if row.status == "active", old.pausedInFile || old.expression != spec.expression || old.timezone != spec.timezone {
                row.fireAfter = max(row.fireAfter, now.timeIntervalSince1970)
            }
            row.specHash = hash
            row.updatedAt = stamp
            row.spec = encodeSpec(spec)
            row.resource = try await deploymentResource(id: row.id, spec: spec, name: file.name, createdAt: row.createdAt, now: now).compactJSON
            try await database.saveDeployment(row)
        }
        for row in existing where !files.contains(where: { $0.name == row.name }) {
            guard decodeSpec(row.spec)?.sourceFile != nil else { continue }
            report.archived.append(row.name)
            guard !dryRun else { continue }
            var archived = row
            archived.archivedAt = stamp
            archived.updatedAt = stamp
            try await database.saveDeployment(archived)
        }
        return report
    }

    private func create(_ file: ScheduleFile, hash: String, now: Date) async throws {
        let id = Identifier.make(prefix: "depl", now: now)
        let stamp = Timestamp.string(now)
        let spec = try await makeSpec(file, agentID: Identifier.make(prefix: "agent", now: now), agentVersion: 1, now: now)
        try await database.saveAgentVersion(
            id: spec.agentID, version: 1, workspaceID: workspace, createdAt: stamp,
            resource: agentResource(spec, now: now).compactJSON)
        try await database.saveDeployment(
            DeploymentRow(
                id: id, workspaceID: workspace, name: file.name, status: file.paused ? "paused" : "active",
                createdAt: stamp, updatedAt: stamp, archivedAt: nil, lastRunAt: nil, fireAfter: now.timeIntervalSince1970,
                specHash: hash, resource: try await deploymentResource(id: id, spec: spec, name: file.name, createdAt: stamp, now: now).compactJSON,
                spec: encodeSpec(spec)))
    }

    private func makeSpec(_ file: ScheduleFile, agentID: String, agentVersion: Int, now: Date) async throws -> DeploymentSpec {
        DeploymentSpec(
            agentID: agentID, agentVersion: agentVersion, agent: file.agent, agentSnapshot: file.agentSnapshot,
            environment: file.environment, initialEvents: file.initialEvents,
            expression: file.schedule?.expression, timezone: file.schedule?.timeZone.identifier,
            jitterSeconds: file.jitterSeconds, pausedInFile: file.paused, description: file.description,
            metadata: file.metadata, sourceFile: file.file, job: file.job)
    }

    /// The environment named in the spec: an existing one, or one created from its inline config.
    private func environmentID(_ environment: JSONValue, now: Date) async throws -> String {
        let fields = environment.objectValue ?? [:]
        guard case .string(let name)? = fields["name"] else { return "env_default" }
        if let found = try await database.environment(workspace: workspace, name: name) {
            if fields["config"] != nil {
                var resource = JSONValue.decode(found.resource).objectValue ?? [:]
                resource["config"] = fields["config"]
                try await database.saveEnvironment(
                    id: found.id, workspaceID: workspace, createdAt: Timestamp.string(now), resource: JSONValue.object(resource).compactJSON)
            }
            return found.id
        }
        let id = Identifier.make(prefix: "env", now: now)
        let stamp = Timestamp.string(now)
        let resource: JSONValue = .object([
            "id": .string(id), "type": .string("environment"), "name": .string(name),
            "config": fields["config"] ?? .object(["type": .string("cloud")]),
            "description": fields["description"] ?? .null, "metadata": .object([:]),
            "created_at": .string(stamp), "updated_at": .string(stamp), "archived_at": .null,
        ])
        try await database.saveEnvironment(id: id, workspaceID: workspace, createdAt: stamp, resource: resource.compactJSON)
        return id
    }

    private func agentResource(_ spec: DeploymentSpec, now: Date) -> JSONValue {
        var fields = spec.agent.objectValue ?? [:]
        fields["id"] = .string(spec.agentID)
        fields["type"] = .string("agent")
        fields["version"] = .number(Double(spec.agentVersion))
        fields["created_at"] = .string(Timestamp.string(now))
        return .object(fields)
    }

    private func deploymentResource(id: String, spec: DeploymentSpec, name: String, createdAt: String, now: Date) async throws -> JSONValue {
        let environmentID = try await environmentID(spec.environment, now: now)
        var schedule: JSONValue = .null
        if let expression = spec.expression, let timezone = spec.timezone {
            schedule = .object(["type": .string("cron"), "expression": .string(expression), "timezone": .string(timezone)])
        }
        var resource: [String: JSONValue] = [
            "id": .string(id),
            "type": .string("deployment"),
            "name": .string(name),
            "description": spec.description.map(JSONValue.string) ?? .null,
            "agent": .object(["id": .string(spec.agentID), "type": .string("agent"), "version": .number(Double(spec.agentVersion))]),
            "environment_id": .string(environmentID),
            "initial_events": .array(spec.initialEvents),
            "metadata": .object(spec.metadata.mapValues(JSONValue.string)),
            "resources": .array([]),
            "vault_ids": .array([]),
            "schedule": schedule,
            "created_at": .string(createdAt),
            "updated_at": .string(Timestamp.string(now)),
            "archived_at": .null,
        ]
        // Drover's own field: what each fire starts when it is a batch job rather than a session.
        if let job = spec.job {
            resource["job"] = .object(["name": .string(job.name), "file": .string(job.file), "overlap": .string(job.overlap.rawValue)])
        }
        return .object(resource)
    }

    static func hash(_ file: ScheduleFile) -> String {
        var parts: [String: JSONValue] = [
            "description": file.description.map(JSONValue.string) ?? .null,
            "agent": file.agent,
            "environment": file.environment,
            "initial_events": .array(file.initialEvents),
            "expression": file.schedule.map { .string($0.expression) } ?? .null,
            "timezone": file.schedule.map { .string($0.timeZone.identifier) } ?? .null,
            "jitter_seconds": .number(Double(file.jitterSeconds)),
            "paused": .bool(file.paused),
            "metadata": .object(file.metadata.mapValues(JSONValue.string)),
        ]
        // Only when set, so that the hashes of session schedules stay what they were.
        if let job = file.job { parts["job"] = .object(["file": .string(job.file), "overlap": .string(job.overlap.rawValue)]) }
        return SHA256.hash(data: Data(JSONValue.object(parts).compactJSON.utf8)).lowercaseHex
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
