import DroverCore
import Foundation
import GRDB

/// A secret as stored: sealed (`VaultKeyring`), with the id of the key that sealed it.
public struct SealedSecret: Codable, Sendable, Equatable {
    public let sealed: Data
    public let keyID: String

    public init(sealed: Data, keyID: String) {
        self.sealed = sealed
        self.keyID = keyID
    }
}

/// What a worker needs of the control plane for one session beyond its files: which vaults it
/// draws credentials from, and its repositories with their tokens. Copied as stored, secrets
/// still sealed, for workers on hosts that do not share this SQLite file.
public struct SessionControlCopy: Codable, Sendable, Equatable {
    public let workspace: String
    public let vaultIDs: [String]
    /// The session's resource as stored: its `resources` name its repositories.
    public let resource: String
    public let repositoryTokens: [String: SealedSecret]

    /// Whether the session takes anything from the control plane at all.
    public var isNeeded: Bool {
        !vaultIDs.isEmpty
            || ((try? JSONValue.parse(resource))?.objectValue?["resources"]?.arrayValue ?? []).contains {
                $0.objectValue?["type"]?.stringValue == "github_repository"
            }
    }
}

/// A live vault's live credentials, sealed as stored.
public struct VaultControlCopy: Codable, Sendable, Equatable {
    public let workspace: String
    public let credentials: [ControlPlaneStore.CredentialRow]
}

extension ControlPlaneStore {
    /// The session's copy, or nil when this control plane does not hold it.
    public func sessionControlCopy(session: String) async throws -> SessionControlCopy? {
        let (found, tokens) = try await database.pool.read { db in
            let found = try GRDB.Row.fetchOne(db, sql: "SELECT workspace_id, resource FROM api_sessions WHERE id = ?", arguments: [session])
            let tokens = try GRDB.Row.fetchAll(
                db, sql: "SELECT resource_id, sealed, key_id FROM session_repository_tokens WHERE session_id = ?", arguments: [session])
            return (found, tokens)
        }
        guard let found else { return nil }
        let resource: String = found["resource"]
        var sealed: [String: SealedSecret] = [:]
        for row in tokens { sealed[row["resource_id"]] = SealedSecret(sealed: row["sealed"], keyID: row["key_id"]) }
        return SessionControlCopy(
            workspace: found["workspace_id"],
            vaultIDs: (try? JSONValue.parse(resource))?.objectValue?["vault_ids"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            resource: resource, repositoryTokens: sealed)
    }

    /// The vault's copy, or nil when it is archived or gone.
    public func vaultControlCopy(vault: String) async throws -> VaultControlCopy? {
        let workspace = try await database.pool.read { db in
            try String.fetchOne(db, sql: "SELECT workspace_id FROM vaults WHERE id = ? AND archived_at IS NULL", arguments: [vault])
        }
        guard let workspace else { return nil }
        return VaultControlCopy(workspace: workspace, credentials: try await liveCredentials(vaults: [vault], workspace: workspace))
    }

    /// Every session that names a vault or a repository, and every live vault: what a full
    /// copy holds.
    public func controlCopyIDs() async throws -> (sessions: [String], vaults: [String]) {
        try await database.pool.read { db in
            let sessions = try String.fetchAll(
                db,
                sql: """
                    SELECT id FROM api_sessions
                    WHERE json_array_length(json_extract(resource, '$.vault_ids')) > 0
                       OR EXISTS (SELECT 1 FROM json_each(json_extract(resource, '$.resources')) WHERE json_extract(value, '$.type') = 'github_repository')
                    """)
            let vaults = try String.fetchAll(db, sql: "SELECT id FROM vaults WHERE archived_at IS NULL")
            return (sessions, vaults)
        }
    }

    /// The vault a credential belongs to.
    public func vaultOfCredential(_ id: String) async throws -> String? {
        try await database.pool.read { db in try String.fetchOne(db, sql: "SELECT vault_id FROM vault_credentials WHERE id = ?", arguments: [id]) }
    }

    /// The live credentials a session draws on, oldest first: those of the vaults it names that
    /// live in its own workspace.
    public static func credentialRows(of session: SessionControlCopy, vaults: [String: VaultControlCopy]) -> [CredentialRow] {
        session.vaultIDs.compactMap { vaults[$0] }.filter { $0.workspace == session.workspace }.flatMap(\.credentials)
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }
}
