import DroverCore
import Foundation
import GRDB

enum EnvironmentKeyTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("environments: worker keys") { db in
            try db.execute(
                sql: """
                    CREATE TABLE environment_keys (
                        id TEXT PRIMARY KEY, environment_id TEXT NOT NULL, workspace_id TEXT NOT NULL,
                        key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
                    CREATE INDEX environment_keys_by_environment ON environment_keys(environment_id);
                    """)
        }
    }
}

/// The keys of self-hosted environments' workers (the SDK's `environment_key`). A key is shown
/// once, kept only as its SHA-256, and grants its environment's work queue and the sessions that
/// run there: nothing else (`AuthenticationMiddleware`).
extension ControlPlaneStore {
    public struct EnvironmentKey: Sendable, Equatable {
        public let id: String
        public let environmentID: String
        public let workspace: String
        public let createdAt: String
        public let revokedAt: String?
    }

    /// What every environment key starts with, so that the server knows one when it sees it.
    public static let environmentKeyPrefix = "drv-env-"

    /// Creates a key for the environment and returns it with its secret, seen only here.
    public func createEnvironmentKey(environment: String, workspace: String) async throws -> (key: EnvironmentKey, secret: String) {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255, using: &rng) }
        let secret = Self.environmentKeyPrefix + bytes.lowercaseHex
        let key = EnvironmentKey(
            id: Identifier.make(prefix: "envkey"), environmentID: environment, workspace: workspace, createdAt: Self.timestamp(), revokedAt: nil)
        try await database.pool.write { db in
            try db.execute(
                sql: "INSERT INTO environment_keys (id, environment_id, workspace_id, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [key.id, environment, workspace, Self.hash(key: secret), key.createdAt])
        }
        return (key, secret)
    }

    public func environmentKeys(environment: String) async throws -> [EnvironmentKey] {
        try await database.pool.read { db in
            try GRDB.Row.fetchAll(
                db, sql: "SELECT * FROM environment_keys WHERE environment_id = ? ORDER BY created_at", arguments: [environment]
            ).map(Self.environmentKey)
        }
    }

    /// The active key whose secret this is, or nil.
    public func environmentKey(secret: String) async throws -> EnvironmentKey? {
        let hash = Self.hash(key: secret)
        return try await database.pool.read { db in
            try GRDB.Row.fetchOne(db, sql: "SELECT * FROM environment_keys WHERE key_hash = ? AND revoked_at IS NULL", arguments: [hash])
                .map(Self.environmentKey)
        }
    }

    /// Returns false when the environment has no active key with that id.
    public func revokeEnvironmentKey(id: String, environment: String) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(
                sql: "UPDATE environment_keys SET revoked_at = ? WHERE id = ? AND environment_id = ? AND revoked_at IS NULL",
                arguments: [Self.timestamp(), id, environment])
            return db.changesCount > 0
        }
    }

    private static func environmentKey(_ row: GRDB.Row) -> EnvironmentKey {
        EnvironmentKey(
            id: row["id"], environmentID: row["environment_id"], workspace: row["workspace_id"], createdAt: row["created_at"],
            revokedAt: row["revoked_at"])
    }
}
