import DroverCore
import Foundation
import GRDB

/// Batches and their items in SQLite: what a rerun of a job reads to skip finished work.
extension MirrorDatabase {
    public struct BatchRow: Sendable, Equatable {
        public let id: String
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

    public func saveBatch(id: String, name: String, jobFile: String, status: String, resource: String) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO batches (id, name, job_file, status, created_at, updated_at, resource)
                VALUES (?, ?, ?, ?, \(Self.now), \(Self.now), ?)
                ON CONFLICT(id) DO UPDATE SET name = excluded.name, job_file = excluded.job_file,
                  status = excluded.status, updated_at = excluded.updated_at, resource = excluded.resource
                """, arguments: [id, name, jobFile, status, resource])
        }
    }

    public func batch(_ id: String) async throws -> BatchRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [id]).map(Self.batchRow)
        }
    }

    public func batches(limit: Int = 100) async throws -> [BatchRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM batches ORDER BY COALESCE(updated_at, created_at) DESC LIMIT ?", arguments: [limit]).map(Self.batchRow)
        }
    }

    public func saveBatchItem(_ item: BatchItemRow) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO batch_items (batch_id, item_key, item_id, position, session_id, status, result, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, \(Self.now))
                ON CONFLICT(batch_id, item_key) DO UPDATE SET item_id = excluded.item_id, position = excluded.position,
                  session_id = excluded.session_id, status = excluded.status, result = excluded.result,
                  updated_at = excluded.updated_at
                """, arguments: [item.batchId, item.itemKey, item.itemId, item.position, item.sessionId, item.status, item.result])
        }
    }

    public func batchItems(_ batchId: String) async throws -> [BatchItemRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM batch_items WHERE batch_id = ? ORDER BY position, item_id", arguments: [batchId]).map { row in
                BatchItemRow(batchId: row["batch_id"], itemKey: row["item_key"], itemId: row["item_id"] ?? "",
                             position: row["position"] ?? 0, sessionId: row["session_id"], status: row["status"], result: row["result"])
            }
        }
    }

    /// Records who started a session (`batch`, `deployment`, `api`), for `drover report usage`.
    public func saveSessionOrigin(session: String, kind: String, originId: String, workspaceId: String?) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO session_origins (session_id, kind, origin_id, workspace_id, created_at)
                VALUES (?, ?, ?, ?, \(Self.now)) ON CONFLICT(session_id) DO NOTHING
                """, arguments: [session, kind, originId, workspaceId])
        }
    }

    /// The stored agent resource (JSON) with this name: the newest unarchived version.
    public func agentResource(named name: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: """
                SELECT resource FROM agents WHERE json_extract(resource, '$.name') = ? AND archived_at IS NULL
                ORDER BY version DESC LIMIT 1
                """, arguments: [name])
        }
    }

    /// The stored environment resource (JSON) with this name.
    public func environmentResource(named name: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: """
                SELECT resource FROM environments WHERE json_extract(resource, '$.name') = ? AND archived_at IS NULL
                ORDER BY created_at DESC LIMIT 1
                """, arguments: [name])
        }
    }

    private static func batchRow(_ row: Row) -> BatchRow {
        BatchRow(id: row["id"], name: row["name"] ?? "", jobFile: row["job_file"], status: row["status"],
                 createdAt: row["created_at"], updatedAt: row["updated_at"], resource: row["resource"])
    }
}
