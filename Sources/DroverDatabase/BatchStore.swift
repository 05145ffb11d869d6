import DroverCore
import Foundation
import GRDB

/// Batches (one row per run of a job), their items (one per item key), and which batch or
/// deployment started each session, for metering.
enum BatchTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("batches: runs, items and session origins", merging: ["v2: batch items and session origins"]) { db, applied in
            if try !db.tableExists("batches") {
                try db.execute(
                    sql: """
                        CREATE TABLE batches (
                            id TEXT PRIMARY KEY, workspace_id TEXT, job_file TEXT NOT NULL, status TEXT NOT NULL,
                            created_at TEXT NOT NULL, resource TEXT NOT NULL);
                        CREATE TABLE batch_items (
                            batch_id TEXT NOT NULL REFERENCES batches(id), item_key TEXT NOT NULL,
                            session_id TEXT, status TEXT NOT NULL, result TEXT,
                            PRIMARY KEY (batch_id, item_key));
                        """)
            }
            if !applied.contains("v2: batch items and session origins") {
                try db.execute(
                    sql: """
                        ALTER TABLE batches ADD COLUMN name TEXT;
                        ALTER TABLE batches ADD COLUMN updated_at TEXT;
                        ALTER TABLE batch_items ADD COLUMN item_id TEXT;
                        ALTER TABLE batch_items ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
                        ALTER TABLE batch_items ADD COLUMN updated_at TEXT;
                        CREATE INDEX batch_items_by_session ON batch_items(session_id);
                        CREATE TABLE session_origins (
                            session_id TEXT PRIMARY KEY, kind TEXT NOT NULL, origin_id TEXT NOT NULL,
                            workspace_id TEXT, created_at TEXT NOT NULL);
                        CREATE INDEX session_origins_by_origin ON session_origins(kind, origin_id);
                        """)
            }
        }
    }
}

/// Batches and their items in SQLite: what a rerun of a job reads to skip finished work.
extension MirrorDatabase {
    public struct BatchRow: Sendable, Equatable {
        public let id: String
        /// Whose batch it is: the workspace of its sessions; nil for batches saved before
        /// batches knew (those were all `drover run`'s, the local workspace's).
        public let workspaceId: String?
        public let name: String
        public let jobFile: String
        public let status: String
        public let createdAt: String
        public let updatedAt: String?
        /// JSON: counts, the model used, the report folder.
        public let resource: String
    }

    public struct BatchItemRow: Sendable, Equatable {
        public let batchId: String
        public let itemKey: String
        public let itemId: String
        public let position: Int
        public let sessionId: String?
        public let status: String
        /// JSON: attempts, sessions, columns, error, usage, timings.
        public let result: String?

        public init(batchId: String, itemKey: String, itemId: String, position: Int, sessionId: String?, status: String, result: String?) {
            self.batchId = batchId
            self.itemKey = itemKey
            self.itemId = itemId
            self.position = position
            self.sessionId = sessionId
            self.status = status
            self.result = result
        }
    }

    static let now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

    /// A nil `workspace` keeps the one the batch has.
    public func saveBatch(id: String, workspace: String? = nil, name: String, jobFile: String, status: String, resource: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO batches (id, workspace_id, name, job_file, status, created_at, updated_at, resource)
                    VALUES (?, ?, ?, ?, ?, \(Self.now), \(Self.now), ?)
                    ON CONFLICT(id) DO UPDATE SET workspace_id = COALESCE(excluded.workspace_id, batches.workspace_id),
                      name = excluded.name, job_file = excluded.job_file,
                      status = excluded.status, updated_at = excluded.updated_at, resource = excluded.resource
                    """, arguments: [id, workspace, name, jobFile, status, resource])
        }
    }

    public func batch(_ id: String) async throws -> BatchRow? {
        try await pool.read { db in
            try BatchRow.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [id])
        }
    }

    public func batches(limit: Int = 100) async throws -> [BatchRow] {
        try await pool.read { db in
            try BatchRow.fetchAll(db, sql: "SELECT * FROM batches ORDER BY COALESCE(updated_at, created_at) DESC LIMIT ?", arguments: [limit])
        }
    }

    /// A workspace's batches, newest first. `includeUnowned` adds batches saved before batches
    /// knew their workspace: the local workspace's, as only `drover run` made batches then.
    public func batches(workspace: String, includeUnowned: Bool, offset: Int = 0, limit: Int = 100) async throws -> [BatchRow] {
        try await pool.read { db in
            try BatchRow.fetchAll(
                db, sql: "SELECT * FROM batches WHERE \(Self.ownedBy) ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                arguments: [workspace, includeUnowned, limit, offset])
        }
    }

    /// One batch of the workspace's (as `batches(workspace:includeUnowned:)` counts them), or nil.
    public func batch(_ id: String, workspace: String, includeUnowned: Bool) async throws -> BatchRow? {
        try await pool.read { db in
            try BatchRow.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ? AND (\(Self.ownedBy))", arguments: [id, workspace, includeUnowned])
        }
    }

    /// The batches a workspace sees; arguments: the workspace, and whether it owns the unowned.
    private static let ownedBy = "(workspace_id = ? OR (? AND workspace_id IS NULL))"

    public func saveBatchItem(_ item: BatchItemRow) async throws {
        try await pool.write { db in try Self.saveBatchItem(item, in: db) }
    }

    /// A batch item's new attempt, in one transaction: its session's row (the agent and
    /// environment it was created with), the session's origin, and the item, now running in
    /// that session. Three writes per item were three commits, a large part of a batch's CPU.
    public func saveBatchAttempt(
        _ item: BatchItemRow, session: String, resource: String?, environment: String?, workspaceId: String?
    ) async throws {
        try await pool.write { db in
            try Self.saveSessionResource(session, resource: resource, environment: environment, in: db)
            try Self.saveSessionOrigin(session: session, kind: "batch", originId: item.batchId, workspaceId: workspaceId, in: db)
            try Self.saveBatchItem(item, in: db)
        }
    }

    private static func saveBatchItem(_ item: BatchItemRow, in db: Database) throws {
        // Prepared once per connection: a batch saves each item several times.
        try db.cachedStatement(
            sql: """
                INSERT INTO batch_items (batch_id, item_key, item_id, position, session_id, status, result, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, \(Self.now))
                ON CONFLICT(batch_id, item_key) DO UPDATE SET item_id = excluded.item_id, position = excluded.position,
                  session_id = excluded.session_id, status = excluded.status, result = excluded.result,
                  updated_at = excluded.updated_at
                """
        ).execute(arguments: [item.batchId, item.itemKey, item.itemId, item.position, item.sessionId, item.status, item.result])
    }

    public func batchItems(_ batchId: String) async throws -> [BatchItemRow] {
        try await pool.read { db in
            try BatchItemRow.fetchAll(db, sql: "SELECT * FROM batch_items WHERE batch_id = ? ORDER BY position, item_id", arguments: [batchId])
        }
    }

    /// Forgets a batch and its items; their sessions (and logs) stay. False if there was none.
    @discardableResult
    public func deleteBatch(_ id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM batch_items WHERE batch_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM batches WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    /// Records who started a session (`batch`, `deployment`, `api`), for `drover report usage`.
    public func saveSessionOrigin(session: String, kind: String, originId: String, workspaceId: String?) async throws {
        try await pool.write { db in try Self.saveSessionOrigin(session: session, kind: kind, originId: originId, workspaceId: workspaceId, in: db) }
    }

    private static func saveSessionOrigin(session: String, kind: String, originId: String, workspaceId: String?, in db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO session_origins (session_id, kind, origin_id, workspace_id, created_at)
                VALUES (?, ?, ?, ?, \(Self.now)) ON CONFLICT(session_id) DO NOTHING
                """
        ).execute(arguments: [session, kind, originId, workspaceId])
    }

    /// Who started `child`'s parent, recorded for `child` too: a session thread's tokens count
    /// towards its session's batch, deployment or workspace. Nothing when the parent has none.
    public func inheritSessionOrigin(_ child: String, from parent: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO session_origins (session_id, kind, origin_id, workspace_id, created_at)
                    SELECT ?, kind, origin_id, workspace_id, \(Self.now) FROM session_origins WHERE session_id = ?
                    ON CONFLICT(session_id) DO NOTHING
                    """, arguments: [child, parent])
        }
    }

    /// The stored agent resource (JSON) with this name: the newest unarchived version.
    public func agentResource(named name: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(
                db,
                sql: """
                    SELECT resource FROM agents WHERE json_extract(resource, '$.name') = ? AND archived_at IS NULL
                    ORDER BY version DESC LIMIT 1
                    """, arguments: [name])
        }
    }

    /// The stored environment resource (JSON) with this name.
    public func environmentResource(named name: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(
                db,
                sql: """
                    SELECT resource FROM environments WHERE json_extract(resource, '$.name') = ? AND archived_at IS NULL
                    ORDER BY created_at DESC LIMIT 1
                    """, arguments: [name])
        }
    }

}

extension MirrorDatabase.BatchRow: FetchableRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], workspaceId: row["workspace_id"], name: row["name"] ?? "", jobFile: row["job_file"], status: row["status"],
            createdAt: row["created_at"], updatedAt: row["updated_at"], resource: row["resource"])
    }
}

extension MirrorDatabase.BatchItemRow: FetchableRecord {
    public init(row: Row) throws {
        self.init(
            batchId: row["batch_id"], itemKey: row["item_key"], itemId: row["item_id"] ?? "",
            position: row["position"] ?? 0, sessionId: row["session_id"], status: row["status"], result: row["result"])
    }
}
