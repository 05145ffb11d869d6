import Crypto
import DroverBrain
import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverJobs
import DroverQueue
import DroverSessionLog
import DroverWebhooks
import Foundation
import Logging

/// Fires one deployment: a session with the deployment's agent snapshot, its initial events,
/// a turn task, and a deployment run. A scheduled fire is idempotent: its session and run ids
/// and turn task ids derive from (deployment, occurrence), so a fire redone after a crash, or
/// by a new leader after the old one stalled, adds nothing twice.
public struct DeploymentFirer: Sendable {
    public let store: DeploymentStore
    public let sessionLog: SessionLog
    public let queue: TaskQueue
    public let turnQueue: QueueName
    /// Fault points for tests of a fire that fails partway: `start`, before anything is
    /// written, and `enqueued`, after the turn is enqueued and before the run is recorded.
    var faultPoint: (@Sendable (_ step: String) throws -> Void)?
    /// Starts a batch of a job deployment (`drover scheduler` runs `drover run` for it). Nil:
    /// job deployments cannot fire here, and their fires fail (and are retried).
    public var launchBatch: (@Sendable (BatchLaunch) async throws -> Void)?
    /// Where `deployment_run.started`, `.succeeded` and `.failed` go; nil sends none.
    public var webhooks: WebhookOutbox?

    /// A batch a job deployment's fire starts.
    public struct BatchLaunch: Sendable {
        public let batchId: String
        public let job: ScheduledJob
        public let deploymentName: String
    }

    /// An occurrence of a job deployment with `overlap: queue` whose previous batch is still
    /// running: not fired yet, and tried again at the next tick.
    public struct Deferred: Error, CustomStringConvertible {
        public let description: String
    }

    /// The run error of an occurrence skipped because the previous batch was still running.
    public static let overlapSkipped = "overlap_skipped"

    public init(store: DeploymentStore, sessionLog: SessionLog, queue: TaskQueue, turnQueue: QueueName = TurnQueue.defaultName) {
        self.store = store
        self.sessionLog = sessionLog
        self.queue = queue
        self.turnQueue = turnQueue
    }

    /// A reason the run cannot start that retrying will not fix; the run records it as its
    /// `error`, with no session.
    struct RunFailure: Error {
        /// The SDK's run error type (`environment_archived_error`, ...).
        let type: String
        let message: String
    }

    /// Fires `row` for the occurrence `scheduledAt` (nil: a manual run). Returns the run resource:
    /// with a `session_id`, or with an `error` when its agent or environment was archived or is
    /// gone. Other failures throw, and firing again retries them.
    @discardableResult
    public func fire(_ row: DeploymentRow, scheduledAt: Date?, now: Date) async throws -> JSONValue {
        let run = try await fireRun(row, scheduledAt: scheduledAt, now: now)
        await notify(run, workspace: row.workspaceID)
        return run
    }

    /// The run's webhooks, once it is recorded: it started, then it started its session or batch
    /// (succeeded) or recorded why it could not (failed). Their ids derive from the run's, so a
    /// fire redone after a crash sends nothing new. A webhook that cannot be queued is logged:
    /// the run stands.
    private func notify(_ run: JSONValue, workspace: String) async {
        guard let webhooks, let fields = run.objectValue, let id = fields["id"]?.stringValue, fields["deployment_id"] != nil else { return }
        let failed = fields["error"].map { $0 != .null } ?? false
        do {
            try await webhooks.emit(.deploymentRunStarted, objectID: id, workspace: workspace, source: id)
            try await webhooks.emit(failed ? .deploymentRunFailed : .deploymentRunSucceeded, objectID: id, workspace: workspace, source: id)
        } catch {
            Logger(label: "drover.webhooks").warning("webhooks of deployment run \(id) were not queued: \(error)")
        }
    }

    private func fireRun(_ row: DeploymentRow, scheduledAt: Date?, now: Date) async throws -> JSONValue {
        guard let spec = decodeSpec(row.spec) else {
            throw FieldError(field: "deployment", message: "'\(row.name)' has no stored spec", fix: "run `drover apply Schedules/` again")
        }
        try faultPoint?("start")
        let session: SessionID
        let runID: String
        var taskID = Identifier.make(prefix: "task")
        if let scheduledAt {
            let digest = Self.digest(deployment: row.id, occurrence: scheduledAt)
            session = try SessionID("sesn_" + digest)
            runID = "drun_" + digest
            taskID = "task_" + digest
        } else {
            session = SessionID.make()
            runID = Identifier.make(prefix: "drun", now: now)
        }
        let createdAt = Timestamp.string(now)
        let run = RunRecord(store: store, id: runID, row: row, spec: spec, createdAt: createdAt, scheduledAt: scheduledAt)
        if let job = spec.job {
            return try await fireBatch(row, job: job, scheduledAt: scheduledAt, now: now, run: run)
        }
        // A fire redone after its session was made completes it, whatever changed since.
        let resumed = try await scheduledAt.asyncMap { try await started(row, occurrence: $0) } ?? false
        var environment: JSONValue?
        if !resumed {
            do {
                try await checkAgent(spec, workspace: row.workspaceID)
                try await checkVaults(spec, workspace: row.workspaceID)
                environment = try await environmentConfig(spec.environment, workspace: row.workspaceID)
            } catch let failure as RunFailure {
                return try await run.record(error: .object(["type": .string(failure.type), "message": .string(failure.message)]))
            }
        }
        try await sessionLog.create(session, agent: spec.agentSnapshot, environment: environment)
        try await store.database.saveSessionOrigin(session: session.rawValue, kind: "deployment", originId: row.id, workspaceId: row.workspaceID)
        let events = try NewEvent.parseClientEvents(JSONValue.array(spec.initialEvents).compactJSON)
        try await SessionInbox(log: sessionLog, queue: queue, turnQueue: turnQueue).send(
            events, to: session, clientKey: "deployment-run:\(runID)", turnID: taskID)
        try faultPoint?("enqueued")

        let resource = try await run.record(session: session)
        try await registerSession(session, spec: spec, deployment: row, createdAt: createdAt)
        return resource
    }

    /// A job deployment's fire: one batch of the job per occurrence, started exactly once (its id
    /// derives from the occurrence, and a batch that already exists is not started again unless
    /// its run died), and recorded as a run whose `batch_id` (Drover's field) links to it.
    private func fireBatch(_ row: DeploymentRow, job: ScheduledJob, scheduledAt: Date?, now: Date, run: RunRecord) async throws -> JSONValue {
        let batchId = job.batchId(occurrence: scheduledAt, now: now, deployment: row.id)
        guard let launchBatch else {
            throw FieldError(
                field: "job", message: "\(row.name) starts a batch job, and this process cannot start batches",
                fix: "run `drover scheduler`, which starts them")
        }
        let existing = try await store.database.batch(batchId)
        if existing == nil, job.overlap != .allow, let previous = try await previousBatch(of: row, before: batchId),
            try await isRunning(previous)
        {
            guard job.overlap == .skip else {
                throw Deferred(
                    description: "\(row.name): batch \(previous) of the previous run is still running (overlap: queue); this one starts after it")
            }
            return try await run.record(
                error: .object([
                    "type": .string(Self.overlapSkipped),
                    "message": .string("batch \(previous) of the previous run was still running (overlap: skip)"),
                ]),
                batch: .null)
        }
        // A batch already started is started again only if its run died before finishing: the
        // rerun continues it, and a second start while the first runs stops at the batch lock.
        var start = existing == nil
        if let existing, existing.status != "completed" { start = try await !isRunning(batchId) }
        if start {
            if existing == nil {
                try await store.database.saveBatch(
                    id: batchId, workspace: row.workspaceID, name: job.name, jobFile: job.file, status: "starting",
                    resource: JSONValue.object([
                        "id": .string(batchId), "type": .string("batch"), "name": .string(job.name), "job_file": .string(job.file),
                        "status": .string("starting"), "deployment_id": .string(row.id),
                    ]).compactJSON)
            }
            try await launchBatch(BatchLaunch(batchId: batchId, job: job, deploymentName: row.name))
        }
        return try await run.record(batch: .string(batchId))
    }

    /// The batch the deployment's latest earlier run started, if any.
    private func previousBatch(of row: DeploymentRow, before batchId: String) async throws -> String? {
        for resource in try await store.database.deploymentRuns(deploymentID: row.id, workspace: row.workspaceID, limit: 20) {
            if let batch = JSONValue.decode(resource).objectValue?["batch_id"]?.stringValue, batch != batchId { return batch }
        }
        return nil
    }

    /// A batch is running while a run of it holds its lock, or for a minute after a fire
    /// marked it `starting` (the `drover run` it launched has yet to take the lock).
    private func isRunning(_ batchId: String) async throws -> Bool {
        if try await BatchLock.isHeld(redis: queue.redis, batchId: batchId) { return true }
        guard let row = try await store.database.batch(batchId), row.status == "starting" else { return false }
        let updated = row.updatedAt.flatMap { try? Date($0, strategy: .iso8601) } ?? .distantPast
        return Date().timeIntervalSince(updated) < 60
    }

    /// The deployment pins an agent version; archiving the agent still stops its runs, as in the SDK.
    private func checkAgent(_ spec: DeploymentSpec, workspace: String) async throws {
        let agent = try await ControlPlaneStore(database: store.database).find(.agents, id: spec.agentID, workspace: workspace)
        if let agent, agent.archivedAt != nil {
            throw RunFailure(
                type: "agent_archived_error",
                message: "agent \(spec.agentID) was archived. Fix: point the deployment at another agent, then unpause it")
        }
    }

    /// Every vault the deployment names must still be there, and live: a run without the
    /// credentials it was set up with would fail in ways harder to read.
    private func checkVaults(_ spec: DeploymentSpec, workspace: String) async throws {
        let control = ControlPlaneStore(database: store.database)
        for id in spec.vaultIDs ?? [] {
            guard let vault = try await control.find(.vaults, id: id, workspace: workspace) else {
                throw RunFailure(
                    type: "vault_not_found_error",
                    message: "vault \(id) no longer exists. Fix: update the deployment's vault_ids, then unpause it")
            }
            if vault.archivedAt != nil {
                throw RunFailure(
                    type: "vault_archived_error",
                    message: "vault \(id) was archived. Fix: update the deployment's vault_ids, then unpause it")
            }
        }
    }

    /// The session a scheduled fire of this occurrence creates.
    static func session(deployment: String, occurrence: Date) throws -> SessionID {
        try SessionID("sesn_" + digest(deployment: deployment, occurrence: occurrence))
    }

    /// What a scheduled fire's session, run and task ids are made of.
    static func digest(deployment: String, occurrence: Date) -> String {
        digest("\(deployment)|\(Int64(occurrence.timeIntervalSince1970))")
    }

    /// Whether a fire of this occurrence got as far as creating its session: its turn may run.
    func started(_ row: DeploymentRow, occurrence: Date) async throws -> Bool {
        let session = try Self.session(deployment: row.id, occurrence: occurrence)
        if try await sessionLog.meta(session) != nil { return true }
        return try await sessionLog.database?.session(session.rawValue) != nil
    }

    /// Makes the run's session visible under `/v1/sessions` with its `deployment_id`, whether a
    /// cron or a person fired it. A fire redone after a crash finds it there already.
    private func registerSession(_ session: SessionID, spec: DeploymentSpec, deployment row: DeploymentRow, createdAt: String) async throws {
        let control = ControlPlaneStore(database: store.database)
        guard try await control.find(.sessions, id: session.rawValue, workspace: row.workspaceID) == nil else { return }
        let agentRow = try await control.find(.agents, id: spec.agentID, workspace: row.workspaceID, version: spec.agentVersion)
        let agent = agentRow.map(ControlPlaneStore.agentReference) ?? spec.agent
        let deployment = (try? JSONValue.parse(row.resource))?.objectValue ?? [:]
        let resource: JSONValue = .object([
            "type": .string("session"), "id": .string(session.rawValue), "agent": agent,
            "environment_id": deployment["environment_id"] ?? .null,
            "metadata": .object([:]), "title": .null, "created_at": .string(createdAt), "updated_at": .string(createdAt),
            "resources": .array([]), "vault_ids": .array((spec.vaultIDs ?? []).map(JSONValue.string)), "outcome_evaluations": .array([]),
            "budget": .null,
            "deployment_id": .string(row.id),
        ])
        try await control.insert(
            .sessions, .init(id: session.rawValue, workspace: row.workspaceID, createdAt: createdAt, resource: resource.compactJSON))
        try await ControlPlaneReplica(redis: queue.redis).publish(session: session.rawValue, from: control)
    }

    /// The environment's `config` for the sandboxes: written inline in the schedule, the stored
    /// environment's by id (an API deployment's `environment_id`), or by name (a schedule file's,
    /// where a name with no stored environment means the default one); nil for the default.
    func environmentConfig(_ environment: JSONValue, workspace: String) async throws -> JSONValue? {
        let fields = environment.objectValue ?? [:]
        if let config = fields["config"], config != .null { return config }
        if let id = fields["id"]?.stringValue {
            guard let found = try await ControlPlaneStore(database: store.database).find(.environments, id: id, workspace: workspace) else {
                throw RunFailure(
                    type: "environment_not_found_error",
                    message: "environment \(id) no longer exists. Fix: point the deployment at another environment, then unpause it")
            }
            guard found.archivedAt == nil else {
                throw RunFailure(
                    type: "environment_archived_error",
                    message: "environment \(id) was archived. Fix: point the deployment at another environment, then unpause it")
            }
            return ControlPlaneStore.sessionEnvironmentConfig(found)
        }
        guard let name = fields["name"]?.stringValue,
            let found = try await store.database.environment(workspace: workspace, name: name)
        else { return nil }
        return ControlPlaneStore.sessionEnvironmentConfig(id: found.id, resource: found.resource)
    }

    /// 26 lowercase hex digits (104 bits) of SHA-256.
    static func digest(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).prefix(13).lowercaseHex
    }
}

/// One fire's deployment run: what every outcome of the fire shares, and the one way it is
/// recorded, in the SDK's `deployment_run` shape.
struct RunRecord: Sendable {
    let store: DeploymentStore
    let id: String
    let row: DeploymentRow
    let spec: DeploymentSpec
    let createdAt: String
    let scheduledAt: Date?

    /// Records the run: with its session, or with the error that kept it from starting. A job
    /// deployment's run also has Drover's `batch_id` (null when it started none).
    func record(session: SessionID? = nil, error: JSONValue = .null, batch: JSONValue? = nil) async throws -> JSONValue {
        var fields: [String: JSONValue] = [
            "id": .string(id),
            "type": .string("deployment_run"),
            "agent": .object(["id": .string(spec.agentID), "type": .string("agent"), "version": .number(Double(spec.agentVersion))]),
            "created_at": .string(createdAt),
            "deployment_id": .string(row.id),
            "error": error,
            "session_id": session.map { .string($0.rawValue) } ?? .null,
            "trigger_context": scheduledAt.map { .object(["type": .string("schedule"), "scheduled_at": .string(Timestamp.seconds($0))]) }
                ?? .object(["type": .string("manual")]),
        ]
        if let batch { fields["batch_id"] = batch }
        let resource = JSONValue.object(fields)
        try await store.database.recordDeploymentRun(
            id: id, deploymentID: row.id, workspaceID: row.workspaceID, scheduledAt: scheduledAt.map(Timestamp.seconds),
            sessionID: session?.rawValue, createdAt: createdAt, resource: resource.compactJSON)
        return resource
    }
}
