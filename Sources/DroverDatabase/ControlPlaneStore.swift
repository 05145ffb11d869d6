import Crypto
import DroverCore
import Foundation
import GRDB

/// Workspaces, API keys, and the API's resources: agents (one row per version), environments,
/// sessions and files, each kept as JSON beside the columns it is looked up by.
enum ControlPlaneTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(
            "control plane: workspaces, keys and the API's resources",
            merging: ["v1: control plane", "v2: api sessions", "v4: files"]
        ) { db, applied in
            // `v1: control plane` also made the batch and deployment tables; `BatchTables` and
            // `DeploymentTables` make them when they are missing.
            if !applied.contains("v1: control plane") {
                try db.execute(
                    sql: """
                        CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
                        CREATE TABLE api_keys (
                            id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                            key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
                        CREATE TABLE agents (
                            id TEXT NOT NULL, version INTEGER NOT NULL, workspace_id TEXT NOT NULL,
                            archived_at TEXT, created_at TEXT NOT NULL, resource TEXT NOT NULL,
                            PRIMARY KEY (id, version));
                        CREATE TABLE environments (
                            id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                            created_at TEXT NOT NULL, resource TEXT NOT NULL);
                        """)
            }
            if !applied.contains("v2: api sessions") {
                try db.execute(
                    sql: """
                        CREATE TABLE api_sessions (
                            id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                            created_at TEXT NOT NULL, resource TEXT NOT NULL);
                        CREATE INDEX api_sessions_by_workspace ON api_sessions(workspace_id, created_at);
                        """)
            }
            // Files API metadata; the bytes live under `<data>/files/<workspace>/<file id>`.
            if !applied.contains("v4: files") {
                try db.execute(
                    sql: """
                        CREATE TABLE files (
                            id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                            created_at TEXT NOT NULL, resource TEXT NOT NULL);
                        CREATE INDEX files_by_workspace ON files(workspace_id, created_at);
                        """)
            }
        }
    }
}

/// The control plane in SQLite: workspaces, hashed API keys, and the API's resources (agents
/// with their versions, environments, sessions), each kept as JSON beside the columns it is
/// looked up by. Every lookup is scoped to a workspace: another workspace's id is not found (I7, docs/ARCHITECTURE.md).
public struct ControlPlaneStore: Sendable {
    public let database: MirrorDatabase

    public init(database: MirrorDatabase) {
        self.database = database
    }

    /// Tables with the resource-row layout (`id, workspace_id, archived_at, created_at, resource`).
    public enum Table: String, Sendable {
        case agents
        case environments
        case sessions = "api_sessions"
        case files
        case vaults
    }

    public struct Row: Sendable, Equatable {
        public let id: String
        public let workspace: String
        public let version: Int
        public let archivedAt: String?
        public let createdAt: String
        public let resource: String

        public init(id: String, workspace: String, version: Int = 1, archivedAt: String? = nil, createdAt: String, resource: String) {
            self.id = id
            self.workspace = workspace
            self.version = version
            self.archivedAt = archivedAt
            self.createdAt = createdAt
            self.resource = resource
        }
    }

    public struct APIKeyRecord: Sendable {
        public let id: String
        public let workspace: String
        public let createdAt: String
        public let revokedAt: String?
    }

    public static func timestamp(_ date: Date = Date()) -> String {
        UTCTimestamp.format(date, fractionDigits: 3)
    }

    public static func hash(key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).lowercaseHex
    }

    // MARK: Workspaces and keys

    /// The id of the workspace named `name`, whether or not it exists yet.
    public static func workspaceID(named name: String) -> String { "wrkspc_\(name)" }

    /// The workspace's id, creating it on first use. Ids are `wrkspc_<name>` so that they read well
    /// in logs; names are validated by the caller.
    @discardableResult
    public func workspace(named name: String) async throws -> String {
        let id = Self.workspaceID(named: name)
        try await database.pool.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO workspaces (id, name, created_at) VALUES (?, ?, ?)",
                arguments: [id, name, Self.timestamp()])
        }
        return id
    }

    /// Creates a key in the workspace and returns it: the only time the secret is seen.
    public func createKey(workspace name: String) async throws -> (id: String, key: String, workspace: String) {
        let workspace = try await self.workspace(named: name)
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255, using: &rng) }
        let key = "drv-" + bytes.lowercaseHex
        let id = Identifier.make(prefix: "apikey")
        try await database.pool.write { db in
            try db.execute(
                sql: "INSERT INTO api_keys (id, workspace_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
                arguments: [id, workspace, Self.hash(key: key), Self.timestamp()])
        }
        return (id, key, workspace)
    }

    public func keys() async throws -> [APIKeyRecord] {
        try await database.pool.read { db in
            try APIKeyRecord.fetchAll(db, sql: "SELECT * FROM api_keys ORDER BY created_at")
        }
    }

    /// Returns false when no active key has that id.
    public func revokeKey(id: String) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(sql: "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [Self.timestamp(), id])
            return db.changesCount > 0
        }
    }

    public func activeKeyCount() async throws -> Int {
        try await database.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL") ?? 0
        }
    }

    /// The workspace of an active key, or nil.
    public func workspace(forKey key: String) async throws -> String? {
        let hash = Self.hash(key: key)
        return try await database.pool.read { db in
            try String.fetchOne(db, sql: "SELECT workspace_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", arguments: [hash])
        }
    }

    // MARK: Resources

    public func insert(_ table: Table, _ row: Row) async throws {
        try await database.pool.write { db in
            if table == .agents {
                try db.execute(
                    sql: """
                        INSERT INTO agents (id, version, workspace_id, archived_at, created_at, resource) VALUES (?, ?, ?, ?, ?, ?)
                        """, arguments: [row.id, row.version, row.workspace, row.archivedAt, row.createdAt, row.resource])
            } else {
                try db.execute(
                    sql: """
                        INSERT INTO \(table.rawValue) (id, workspace_id, archived_at, created_at, resource) VALUES (?, ?, ?, ?, ?)
                        """, arguments: [row.id, row.workspace, row.archivedAt, row.createdAt, row.resource])
            }
        }
    }

    /// Adds an agent version only if `expectedVersion` is still the latest: false means another
    /// update won the race.
    public func insertAgentVersion(_ row: Row, expectedVersion: Int) async throws -> Bool {
        try await database.pool.write { db in
            let latest =
                try Int.fetchOne(
                    db, sql: "SELECT MAX(version) FROM agents WHERE id = ? AND workspace_id = ?",
                    arguments: [row.id, row.workspace]) ?? 0
            guard latest == expectedVersion, row.version == expectedVersion + 1 else { return false }
            try db.execute(
                sql: """
                    INSERT INTO agents (id, version, workspace_id, archived_at, created_at, resource) VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [row.id, row.version, row.workspace, row.archivedAt, row.createdAt, row.resource])
            return true
        }
    }

    /// Replaces a row's resource (and archive time). Agents are versioned instead; for them this
    /// rewrites every version's archive state.
    public func update(_ table: Table, id: String, workspace: String, resource: String?, archivedAt: String?) async throws {
        try await database.pool.write { db in
            if let resource {
                try db.execute(
                    sql: "UPDATE \(table.rawValue) SET resource = ?, archived_at = ? WHERE id = ? AND workspace_id = ?",
                    arguments: [resource, archivedAt, id, workspace])
            } else {
                try db.execute(
                    sql: "UPDATE \(table.rawValue) SET archived_at = ? WHERE id = ? AND workspace_id = ?",
                    arguments: [archivedAt, id, workspace])
            }
        }
    }

    /// The row (for agents, the latest version, or `version`) in that workspace.
    public func find(_ table: Table, id: String, workspace: String, version: Int? = nil) async throws -> Row? {
        try await database.pool.read { db in
            let sql: String
            var arguments: StatementArguments = [id, workspace]
            switch (table, version) {
            case (.agents, nil): sql = "SELECT * FROM agents WHERE id = ? AND workspace_id = ? ORDER BY version DESC LIMIT 1"
            case (.agents, let version?):
                sql = "SELECT * FROM agents WHERE id = ? AND workspace_id = ? AND version = ?"
                arguments += [version]
            default: sql = "SELECT * FROM \(table.rawValue) WHERE id = ? AND workspace_id = ?"
            }
            return try Row.fetchOne(db, sql: sql, arguments: arguments)
        }
    }

    /// A page of a workspace's rows, newest first (`ascending` for oldest first). For agents, the
    /// latest version of each. `where` adds `json_extract(resource, path) = value` conditions;
    /// `origins`, for sessions, keeps those each named batch or deployment started
    /// (`session_origins`): naming both a batch and a deployment matches nothing.
    public func list(
        _ table: Table, workspace: String, includeArchived: Bool, offset: Int, limit: Int,
        ascending: Bool = false, created: CreatedAtRange = CreatedAtRange(),
        where conditions: [(path: String, value: String)] = [], origins: [(kind: String, id: String)] = []
    ) async throws -> [Row] {
        try await database.pool.read { db in
            var sql =
                table == .agents
                ? "SELECT a.* FROM agents a WHERE a.version = (SELECT MAX(version) FROM agents b WHERE b.id = a.id) AND a.workspace_id = ?"
                : "SELECT * FROM \(table.rawValue) WHERE workspace_id = ?"
            var arguments: StatementArguments = [workspace]
            if !includeArchived { sql += " AND archived_at IS NULL" }
            for condition in created.conditions {
                sql += " AND \(condition.sql)"
                arguments += [condition.argument]
            }
            for condition in conditions {
                sql += " AND CAST(json_extract(resource, ?) AS TEXT) = ?"
                arguments += [condition.path, condition.value]
            }
            for origin in origins {
                sql += " AND id IN (SELECT session_id FROM session_origins WHERE kind = ? AND origin_id = ?)"
                arguments += [origin.kind, origin.id]
            }
            sql += " ORDER BY created_at \(ascending ? "ASC" : "DESC"), id \(ascending ? "ASC" : "DESC") LIMIT ? OFFSET ?"
            arguments += [limit, offset]
            return try Row.fetchAll(db, sql: sql, arguments: arguments)
        }
    }

    /// An agent's versions, newest first.
    public func agentVersions(id: String, workspace: String, offset: Int, limit: Int) async throws -> [Row] {
        try await database.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM agents WHERE id = ? AND workspace_id = ? ORDER BY version DESC LIMIT ? OFFSET ?
                    """, arguments: [id, workspace, limit, offset])
        }
    }

    /// Returns false when there was no such row in the workspace.
    public func delete(_ table: Table, id: String, workspace: String) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(sql: "DELETE FROM \(table.rawValue) WHERE id = ? AND workspace_id = ?", arguments: [id, workspace])
            return db.changesCount > 0
        }
    }

}

extension ControlPlaneStore.Row: FetchableRecord {
    /// Only agents have versions; a row of any other table is version 1.
    public init(row: GRDB.Row) throws {
        self.init(
            id: row["id"], workspace: row["workspace_id"], version: row["version"] ?? 1,
            archivedAt: row["archived_at"], createdAt: row["created_at"], resource: row["resource"])
    }
}

extension ControlPlaneStore.APIKeyRecord: FetchableRecord {
    public init(row: GRDB.Row) throws {
        self.init(id: row["id"], workspace: row["workspace_id"], createdAt: row["created_at"], revokedAt: row["revoked_at"])
    }
}
