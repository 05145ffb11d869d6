import DroverCore
import Foundation
import GRDB

/// Vaults (the resource-row layout of `ControlPlaneStore`) and their credentials: each
/// credential's public shape as JSON, and its secret fields sealed (`VaultKeyring`), never in
/// clear text.
enum VaultTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("vaults: vaults and sealed credentials") { db in
            try db.execute(
                sql: """
                    CREATE TABLE vaults (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                        created_at TEXT NOT NULL, resource TEXT NOT NULL);
                    CREATE INDEX vaults_by_workspace ON vaults(workspace_id, created_at);
                    CREATE TABLE vault_credentials (
                        id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
                        workspace_id TEXT NOT NULL, archived_at TEXT, created_at TEXT NOT NULL, resource TEXT NOT NULL,
                        sealed BLOB NOT NULL, key_id TEXT NOT NULL);
                    CREATE INDEX vault_credentials_by_vault ON vault_credentials(vault_id, created_at);
                    """)
        }
    }
}

extension ControlPlaneStore {
    /// A credential as stored: its public resource, and its secret fields sealed.
    public struct CredentialRow: Sendable, Equatable, Codable {
        public let id: String
        public let vault: String
        public let workspace: String
        public let archivedAt: String?
        public let createdAt: String
        public let resource: String
        public let sealed: Data
        public let keyID: String

        public init(
            id: String, vault: String, workspace: String, archivedAt: String? = nil, createdAt: String, resource: String, sealed: Data, keyID: String
        ) {
            self.id = id
            self.vault = vault
            self.workspace = workspace
            self.archivedAt = archivedAt
            self.createdAt = createdAt
            self.resource = resource
            self.sealed = sealed
            self.keyID = keyID
        }
    }

    public func insertCredential(_ row: CredentialRow) async throws {
        try await database.pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO vault_credentials (id, vault_id, workspace_id, archived_at, created_at, resource, sealed, key_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [row.id, row.vault, row.workspace, row.archivedAt, row.createdAt, row.resource, row.sealed, row.keyID])
        }
    }

    /// The credential in that vault of that workspace.
    public func credential(_ id: String, vault: String, workspace: String) async throws -> CredentialRow? {
        try await database.pool.read { db in
            try CredentialRow.fetchOne(
                db, sql: "SELECT * FROM vault_credentials WHERE id = ? AND vault_id = ? AND workspace_id = ?", arguments: [id, vault, workspace])
        }
    }

    /// A page of a vault's credentials, newest first.
    public func credentials(vault: String, workspace: String, includeArchived: Bool, offset: Int, limit: Int) async throws -> [CredentialRow] {
        try await database.pool.read { db in
            try CredentialRow.fetchAll(
                db,
                sql: """
                    SELECT * FROM vault_credentials WHERE vault_id = ? AND workspace_id = ? \(includeArchived ? "" : "AND archived_at IS NULL")
                    ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?
                    """, arguments: [vault, workspace, limit, offset])
        }
    }

    /// Every live credential of the given vaults in that workspace, oldest first: what a session
    /// with those `vault_ids` may use.
    public func liveCredentials(vaults: [String], workspace: String) async throws -> [CredentialRow] {
        guard !vaults.isEmpty else { return [] }
        return try await database.pool.read { db in
            try CredentialRow.fetchAll(
                db,
                sql: """
                    SELECT c.* FROM vault_credentials c JOIN vaults v ON v.id = c.vault_id
                    WHERE c.workspace_id = ? AND v.workspace_id = ? AND c.archived_at IS NULL AND v.archived_at IS NULL
                      AND c.vault_id IN (\(vaults.map { _ in "?" }.joined(separator: ",")))
                    ORDER BY c.created_at, c.id
                    """, arguments: StatementArguments([workspace, workspace] + vaults))
        }
    }

    /// Replaces a credential's resource, and its sealed secret when one is given.
    public func updateCredential(_ id: String, workspace: String, resource: String?, sealed: (Data, String)?, archivedAt: String?) async throws {
        try await database.pool.write { db in
            if let resource {
                try db.execute(
                    sql: "UPDATE vault_credentials SET resource = ?, archived_at = ? WHERE id = ? AND workspace_id = ?",
                    arguments: [resource, archivedAt, id, workspace])
            } else {
                try db.execute(
                    sql: "UPDATE vault_credentials SET archived_at = ? WHERE id = ? AND workspace_id = ?", arguments: [archivedAt, id, workspace])
            }
            if let (sealed, keyID) = sealed {
                try db.execute(
                    sql: "UPDATE vault_credentials SET sealed = ?, key_id = ? WHERE id = ? AND workspace_id = ?",
                    arguments: [sealed, keyID, id, workspace])
            }
        }
    }

    public func deleteCredential(_ id: String, vault: String, workspace: String) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(
                sql: "DELETE FROM vault_credentials WHERE id = ? AND vault_id = ? AND workspace_id = ?", arguments: [id, vault, workspace])
            return db.changesCount > 0
        }
    }

    /// Deletes a vault and its credentials in one transaction.
    public func deleteVault(_ id: String, workspace: String) async throws -> Bool {
        try await database.pool.write { db in
            try db.execute(sql: "DELETE FROM vault_credentials WHERE vault_id = ? AND workspace_id = ?", arguments: [id, workspace])
            try db.execute(sql: "DELETE FROM vaults WHERE id = ? AND workspace_id = ?", arguments: [id, workspace])
            return db.changesCount > 0
        }
    }

    /// Seals every credential (and repository token) again under the keyring's current key, in
    /// one transaction, and says how many changed: key rotation's second step.
    public func resealCredentials(with keyring: VaultKeyring) async throws -> Int {
        try await database.pool.write { db in
            var changed = 0
            for row in try CredentialRow.fetchAll(db, sql: "SELECT * FROM vault_credentials WHERE key_id != ?", arguments: [keyring.current.id]) {
                let secret = try keyring.open(row.sealed, keyID: row.keyID, binding: row.id)
                let (sealed, keyID) = try keyring.seal(secret, binding: row.id)
                try db.execute(sql: "UPDATE vault_credentials SET sealed = ?, key_id = ? WHERE id = ?", arguments: [sealed, keyID, row.id])
                changed += 1
            }
            return changed + (try resealRepositoryTokens(db, with: keyring))
        }
    }
}

extension ControlPlaneStore.CredentialRow: FetchableRecord {
    public init(row: GRDB.Row) throws {
        self.init(
            id: row["id"], vault: row["vault_id"], workspace: row["workspace_id"], archivedAt: row["archived_at"], createdAt: row["created_at"],
            resource: row["resource"], sealed: row["sealed"], keyID: row["key_id"])
    }
}
