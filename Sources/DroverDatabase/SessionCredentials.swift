import DroverCore
import Foundation
import GRDB

/// An `environment_variable` credential opened for a worker: the variable, the secret, and
/// where the secret may go. It lives in the worker's memory for one call and is handed to the
/// egress proxy only; `description` never shows the value.
public struct VariableCredential: Sendable, CustomStringConvertible {
    public let id: String
    public let vault: String
    public let variable: String
    public let secret: String
    /// The hosts the secret may be sent to; nil when the credential's networking is unrestricted.
    public let hosts: [String]?
    public let inHeaders: Bool
    public let inBody: Bool

    public var description: String { "VariableCredential(\(id) as $\(variable), value withheld)" }
}

extension ControlPlaneStore {
    /// The `environment_variable` credentials a session may use now: the live ones of the live
    /// vaults its `vault_ids` name, in its workspace, oldest first, unsealed with `keyring`
    /// (asked for only when there is something to open). A session the API never made has none.
    public func variableCredentials(session: String, keyring: () throws -> VaultKeyring) async throws -> [VariableCredential] {
        let found = try await database.pool.read { db in
            try GRDB.Row.fetchOne(db, sql: "SELECT workspace_id, resource FROM api_sessions WHERE id = ?", arguments: [session])
        }
        guard let found else { return [] }
        let workspace: String = found["workspace_id"]
        let resource: String = found["resource"]
        let vaults = (try? JSONValue.parse(resource))?.objectValue?["vault_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let rows = try await liveCredentials(vaults: vaults, workspace: workspace)
        var opened: [VariableCredential] = []
        var ring: VaultKeyring?
        for row in rows {
            guard let auth = (try? JSONValue.parse(row.resource))?.objectValue?["auth"]?.objectValue,
                auth["type"]?.stringValue == "environment_variable", let variable = auth["secret_name"]?.stringValue
            else { continue }
            if ring == nil { ring = try keyring() }
            let plain = try ring!.open(row.sealed, keyID: row.keyID, binding: row.id)
            guard let fields = try? JSONDecoder().decode([String: String].self, from: plain), let secret = fields["secret_value"] else {
                throw VaultKeyring.Failure(description: "credential \(row.id) holds no secret_value")
            }
            let networking = auth["networking"]?.objectValue
            let hosts =
                networking?["type"]?.stringValue == "unrestricted" ? nil : (networking?["allowed_hosts"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            let location = auth["injection_location"]?.objectValue
            opened.append(
                VariableCredential(
                    id: row.id, vault: row.vault, variable: variable, secret: secret, hosts: hosts,
                    inHeaders: location?["header"]?.boolValue ?? true, inBody: location?["body"]?.boolValue ?? false))
        }
        return opened
    }
}
