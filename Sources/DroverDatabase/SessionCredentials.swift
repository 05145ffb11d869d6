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
    /// The live credentials of the live vaults a session's `vault_ids` name, in its workspace,
    /// oldest first, each with its `auth`. A session the API never made has none.
    private func sessionCredentials(session: String) async throws -> [(row: CredentialRow, auth: [String: JSONValue])] {
        let found = try await database.pool.read { db in
            try GRDB.Row.fetchOne(db, sql: "SELECT workspace_id, resource FROM api_sessions WHERE id = ?", arguments: [session])
        }
        guard let found else { return [] }
        let workspace: String = found["workspace_id"]
        let resource: String = found["resource"]
        let vaults = (try? JSONValue.parse(resource))?.objectValue?["vault_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return try await liveCredentials(vaults: vaults, workspace: workspace).compactMap { row in
            guard let auth = (try? JSONValue.parse(row.resource))?.objectValue?["auth"]?.objectValue else { return nil }
            return (row, auth)
        }
    }

    /// A credential's secret field `name`, unsealed.
    private static func secret(_ row: CredentialRow, _ name: String, keyring: VaultKeyring) throws -> String {
        let plain = try keyring.open(row.sealed, keyID: row.keyID, binding: row.id)
        guard let fields = try? JSONDecoder().decode([String: String].self, from: plain), let secret = fields[name] else {
            throw VaultKeyring.Failure(description: "credential \(row.id) holds no \(name)")
        }
        return secret
    }

    /// The `environment_variable` credentials a session may use now, unsealed with `keyring`
    /// (asked for only when there is something to open).
    public func variableCredentials(session: String, keyring: () throws -> VaultKeyring) async throws -> [VariableCredential] {
        var opened: [VariableCredential] = []
        var ring: VaultKeyring?
        for (row, auth) in try await sessionCredentials(session: session) {
            guard auth["type"]?.stringValue == "environment_variable", let variable = auth["secret_name"]?.stringValue else { continue }
            if ring == nil { ring = try keyring() }
            let networking = auth["networking"]?.objectValue
            let hosts =
                networking?["type"]?.stringValue == "unrestricted" ? nil : (networking?["allowed_hosts"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            let location = auth["injection_location"]?.objectValue
            opened.append(
                VariableCredential(
                    id: row.id, vault: row.vault, variable: variable, secret: try Self.secret(row, "secret_value", keyring: ring!), hosts: hosts,
                    inHeaders: location?["header"]?.boolValue ?? true, inBody: location?["body"]?.boolValue ?? false))
        }
        return opened
    }

    /// The token of the session's oldest live `static_bearer` credential for the MCP server at
    /// `serverURL` (compared without a trailing slash), unsealed; nil when none names it.
    public func bearerToken(session: String, serverURL: String, keyring: () throws -> VaultKeyring) async throws -> String? {
        func normalized(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
        let wanted = normalized(serverURL)
        for (row, auth) in try await sessionCredentials(session: session)
        where auth["type"]?.stringValue == "static_bearer" && auth["mcp_server_url"]?.stringValue.map(normalized) == wanted {
            return try Self.secret(row, "token", keyring: try keyring())
        }
        return nil
    }
}
