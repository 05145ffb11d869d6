import DroverCore
import Foundation
import GRDB

/// The tokens of sessions' `github_repository` resources, sealed (`VaultKeyring`, bound to the
/// resource's id) and kept apart from the session's JSON, which holds the resource without it.
enum SessionRepositoryTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("sessions: sealed repository tokens") { db in
            try db.execute(
                sql: """
                    CREATE TABLE session_repository_tokens (
                        resource_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, workspace_id TEXT NOT NULL,
                        sealed BLOB NOT NULL, key_id TEXT NOT NULL);
                    CREATE INDEX session_repository_tokens_by_session ON session_repository_tokens(session_id);
                    """)
        }
    }
}

/// A session's git repository as a worker needs it: where to clone it from and to, and its
/// token, unsealed. `description` never shows the token.
public struct SessionRepository: Sendable, CustomStringConvertible {
    public let id: String
    public let url: String
    /// A branch name, or nil for the repository's default branch.
    public let branch: String?
    /// A commit to check out (detached), or nil.
    public let commit: String?
    /// The clone's path relative to /workspace.
    public let path: String
    public let token: String?

    public var description: String { "SessionRepository(\(id): \(url) at /workspace/\(path), token withheld)" }
}

extension ControlPlaneStore {
    /// Keeps (or replaces) a repository resource's sealed token.
    public func saveRepositoryToken(resource: String, session: String, workspace: String, sealed: Data, keyID: String) async throws {
        try await database.pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO session_repository_tokens (resource_id, session_id, workspace_id, sealed, key_id) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(resource_id) DO UPDATE SET sealed = excluded.sealed, key_id = excluded.key_id
                    """, arguments: [resource, session, workspace, sealed, keyID])
        }
    }

    public func deleteRepositoryTokens(session: String, resource: String? = nil) async throws {
        try await database.pool.write { db in
            if let resource {
                try db.execute(sql: "DELETE FROM session_repository_tokens WHERE session_id = ? AND resource_id = ?", arguments: [session, resource])
            } else {
                try db.execute(sql: "DELETE FROM session_repository_tokens WHERE session_id = ?", arguments: [session])
            }
        }
    }

    /// The `github_repository` resources of `session` (a session's resource, as stored), in the
    /// order it lists them, each
    /// with its token from `tokens` (by resource id) unsealed by `keyring` (asked for only when a
    /// token is there to open).
    public static func repositories(
        session resource: String?, tokens sealed: [String: SealedSecret], keyring: () throws -> VaultKeyring
    ) throws
        -> [SessionRepository]
    {
        guard let resource, let resources = (try? JSONValue.parse(resource))?.objectValue?["resources"]?.arrayValue else { return [] }
        var ring: VaultKeyring?
        var repositories: [SessionRepository] = []
        for item in resources {
            guard let fields = item.objectValue, fields["type"]?.stringValue == "github_repository", let id = fields["id"]?.stringValue,
                let url = fields["url"]?.stringValue, let mount = fields["mount_path"]?.stringValue, mount.hasPrefix("/workspace/")
            else { continue }
            var token: String?
            if let secret = sealed[id] {
                if ring == nil { ring = try keyring() }
                token = String(decoding: try ring!.open(secret.sealed, keyID: secret.keyID, binding: id), as: UTF8.self)
            }
            let checkout = fields["checkout"]?.objectValue
            repositories.append(
                SessionRepository(
                    id: id, url: url, branch: checkout?["type"]?.stringValue == "branch" ? checkout?["name"]?.stringValue : nil,
                    commit: checkout?["type"]?.stringValue == "commit" ? checkout?["sha"]?.stringValue : nil,
                    path: String(mount.dropFirst("/workspace/".count)), token: token))
        }
        return repositories
    }

    /// Seals every repository token again under the keyring's current key: key rotation's
    /// second step, with `resealCredentials`.
    func resealRepositoryTokens(_ db: Database, with keyring: VaultKeyring) throws -> Int {
        var changed = 0
        for row in try GRDB.Row.fetchAll(
            db, sql: "SELECT resource_id, sealed, key_id FROM session_repository_tokens WHERE key_id != ?", arguments: [keyring.current.id])
        {
            let id: String = row["resource_id"]
            let (sealed, keyID) = try keyring.seal(try keyring.open(row["sealed"], keyID: row["key_id"], binding: id), binding: id)
            try db.execute(sql: "UPDATE session_repository_tokens SET sealed = ?, key_id = ? WHERE resource_id = ?", arguments: [sealed, keyID, id])
            changed += 1
        }
        return changed
    }
}
