import DroverCore
import Foundation
import GRDB

/// One stored deployment. `resource` is its `BetaManagedAgentsDeployment` JSON without the
/// computed schedule fields; `spec` is what Drover needs to fire it (agent snapshot, jitter...).
public struct DeploymentRow: Sendable, Equatable {
    public var id: String
    public var workspaceID: String
    public var name: String
    /// `active` or `paused`, as the SDK's `status`.
    public var status: String
    public var createdAt: String
    public var updatedAt: String
    public var archivedAt: String?
    public var lastRunAt: String?
    /// Occurrences at or before this instant (epoch seconds) are never owed: the deployment
    /// did not exist yet, or was paused.
    public var fireAfter: Double
    public var specHash: String
    public var resource: String
    public var spec: String
    /// Why a paused deployment is paused, as the SDK's `paused_reason` JSON; nil: by hand.
    public var pausedReason: String?

    public init(
        id: String, workspaceID: String, name: String, status: String, createdAt: String, updatedAt: String,
        archivedAt: String?, lastRunAt: String?, fireAfter: Double, specHash: String, resource: String, spec: String,
        pausedReason: String? = nil
    ) {
        self.id = id
        self.workspaceID = workspaceID
        self.name = name
        self.status = status
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.archivedAt = archivedAt
        self.lastRunAt = lastRunAt
        self.fireAfter = fireAfter
        self.specHash = specHash
        self.resource = resource
        self.spec = spec
        self.pausedReason = pausedReason
    }
}

/// Deployments (cron schedules) and the runs they fired, at most one per scheduled occurrence.
enum DeploymentTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(
            "deployments: schedules and their runs",
            merging: ["v2: deployments by name, and deployment runs", "v6: deployment paused reasons"]
        ) { db, applied in
            if try !db.tableExists("deployments") {
                try db.execute(
                    sql: """
                        CREATE TABLE deployments (
                            id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, status TEXT NOT NULL,
                            created_at TEXT NOT NULL, resource TEXT NOT NULL);
                        """)
            }
            if !applied.contains("v2: deployments by name, and deployment runs") {
                try db.execute(
                    sql: """
                        ALTER TABLE deployments ADD COLUMN name TEXT;
                        ALTER TABLE deployments ADD COLUMN updated_at TEXT;
                        ALTER TABLE deployments ADD COLUMN archived_at TEXT;
                        ALTER TABLE deployments ADD COLUMN last_run_at TEXT;
                        ALTER TABLE deployments ADD COLUMN fire_after REAL NOT NULL DEFAULT 0;
                        ALTER TABLE deployments ADD COLUMN spec_hash TEXT;
                        ALTER TABLE deployments ADD COLUMN spec TEXT;
                        CREATE UNIQUE INDEX deployments_by_name ON deployments(workspace_id, name) WHERE archived_at IS NULL;
                        CREATE TABLE deployment_runs (
                            id TEXT PRIMARY KEY,
                            deployment_id TEXT NOT NULL REFERENCES deployments(id),
                            workspace_id TEXT NOT NULL,
                            scheduled_at TEXT,
                            session_id TEXT,
                            created_at TEXT NOT NULL,
                            resource TEXT NOT NULL);
                        -- At most one run per (deployment, scheduled occurrence), as the SDK promises.
                        CREATE UNIQUE INDEX deployment_runs_by_occurrence ON deployment_runs(deployment_id, scheduled_at);
                        CREATE INDEX deployment_runs_by_time ON deployment_runs(deployment_id, created_at);
                        """)
            }
            // Why a deployment was paused, when a failed scheduled run paused it.
            if !applied.contains("v6: deployment paused reasons") {
                try db.execute(sql: "ALTER TABLE deployments ADD COLUMN paused_reason TEXT")
            }
        }
    }
}

extension MirrorDatabase {
    public func deployments(workspace: String, includeArchived: Bool = false) async throws -> [DeploymentRow] {
        try await pool.read { db in
            try DeploymentRow.fetchAll(
                db,
                sql: """
                    SELECT * FROM deployments WHERE workspace_id = ? \(includeArchived ? "" : "AND archived_at IS NULL") ORDER BY name, created_at
                    """, arguments: [workspace])
        }
    }

    /// The live (not archived) deployment with this name, or the deployment with this id.
    public func deployment(workspace: String, nameOrID: String) async throws -> DeploymentRow? {
        try await pool.read { db in
            try DeploymentRow.fetchOne(
                db,
                sql: """
                    SELECT * FROM deployments WHERE workspace_id = ? AND ((name = ? AND archived_at IS NULL) OR id = ?)
                    ORDER BY archived_at IS NULL DESC LIMIT 1
                    """, arguments: [workspace, nameOrID, nameOrID])
        }
    }

    public func saveDeployment(_ row: DeploymentRow) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO deployments (id, workspace_id, name, status, created_at, updated_at, archived_at, last_run_at, fire_after, spec_hash, resource, spec, paused_reason)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET
                        name = excluded.name, status = excluded.status, updated_at = excluded.updated_at,
                        archived_at = excluded.archived_at, fire_after = excluded.fire_after,
                        spec_hash = excluded.spec_hash, resource = excluded.resource, spec = excluded.spec,
                        paused_reason = excluded.paused_reason
                    """,
                arguments: [
                    row.id, row.workspaceID, row.name, row.status, row.createdAt, row.updatedAt, row.archivedAt,
                    row.lastRunAt, row.fireAfter, row.specHash, row.resource, row.spec, row.status == "paused" ? row.pausedReason : nil,
                ])
        }
    }

    /// Records a run; false if this (deployment, scheduled_at) has one already. A scheduled
    /// run also moves the deployment's `last_run_at`.
    @discardableResult
    public func recordDeploymentRun(
        id: String, deploymentID: String, workspaceID: String, scheduledAt: String?,
        sessionID: String?, createdAt: String, resource: String
    ) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO deployment_runs (id, deployment_id, workspace_id, scheduled_at, session_id, created_at, resource)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [id, deploymentID, workspaceID, scheduledAt, sessionID, createdAt, resource])
            let inserted = db.changesCount > 0
            if inserted, scheduledAt != nil {
                try db.execute(sql: "UPDATE deployments SET last_run_at = ? WHERE id = ?", arguments: [createdAt, deploymentID])
            }
            return inserted
        }
    }

    /// Run resources (JSON), newest first.
    /// One run's resource, if it is in the workspace.
    public func deploymentRun(id: String, workspace: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT resource FROM deployment_runs WHERE id = ? AND workspace_id = ?", arguments: [id, workspace])
        }
    }

    public func deploymentRuns(deploymentID: String?, workspace: String, limit: Int = 100) async throws -> [String] {
        try await pool.read { db in
            if let deploymentID {
                return try String.fetchAll(
                    db,
                    sql: """
                        SELECT resource FROM deployment_runs WHERE deployment_id = ? AND workspace_id = ? ORDER BY created_at DESC, id DESC LIMIT ?
                        """, arguments: [deploymentID, workspace, limit])
            }
            return try String.fetchAll(
                db,
                sql: """
                    SELECT resource FROM deployment_runs WHERE workspace_id = ? ORDER BY created_at DESC, id DESC LIMIT ?
                    """, arguments: [workspace, limit])
        }
    }

    /// How many runs each scheduled occurrence of a deployment has (epoch text → count).
    public func deploymentRunCounts(deploymentID: String) async throws -> [String: Int] {
        try await pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT scheduled_at, COUNT(*) AS n FROM deployment_runs WHERE deployment_id = ? AND scheduled_at IS NOT NULL GROUP BY scheduled_at
                    """, arguments: [deploymentID])
            {
                counts[row["scheduled_at"]] = row["n"]
            }
            return counts
        }
    }

    /// A stored agent version (the `agents` table), by id and version.
    public func saveAgentVersion(id: String, version: Int, workspaceID: String, createdAt: String, resource: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO agents (id, version, workspace_id, created_at, resource) VALUES (?, ?, ?, ?, ?)
                    """, arguments: [id, version, workspaceID, createdAt, resource])
        }
    }

    public func agentVersion(id: String, version: Int) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT resource FROM agents WHERE id = ? AND version = ?", arguments: [id, version])
        }
    }

    /// The environment with this name in the workspace (its resource JSON), if any.
    public func environment(workspace: String, name: String) async throws -> (id: String, resource: String)? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT id, resource FROM environments WHERE workspace_id = ? AND archived_at IS NULL AND json_extract(resource, '$.name') = ?
                    """, arguments: [workspace, name]
            ).map { ($0["id"], $0["resource"]) }
        }
    }

    public func saveEnvironment(id: String, workspaceID: String, createdAt: String, resource: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO environments (id, workspace_id, created_at, resource) VALUES (?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET resource = excluded.resource
                    """, arguments: [id, workspaceID, createdAt, resource])
        }
    }

}

extension DeploymentRow: FetchableRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], workspaceID: row["workspace_id"], name: row["name"] ?? "", status: row["status"],
            createdAt: row["created_at"], updatedAt: row["updated_at"] ?? row["created_at"], archivedAt: row["archived_at"],
            lastRunAt: row["last_run_at"], fireAfter: row["fire_after"] ?? 0, specHash: row["spec_hash"] ?? "",
            resource: row["resource"], spec: row["spec"] ?? "{}", pausedReason: row["paused_reason"])
    }
}
