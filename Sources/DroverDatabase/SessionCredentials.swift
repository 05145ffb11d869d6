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
    /// Each row with its `auth`; a row without one is skipped.
    static func withAuth(_ rows: [CredentialRow]) -> [(row: CredentialRow, auth: [String: JSONValue])] {
        rows.compactMap { row in
            guard let auth = (try? JSONValue.parse(row.resource))?.objectValue?["auth"]?.objectValue else { return nil }
            return (row, auth)
        }
    }

    /// A credential's secret field `name`, unsealed.
    private static func secret(_ row: CredentialRow, _ name: String, keyring: VaultKeyring) throws -> String {
        guard let secret = try secrets(row, keyring: keyring)[name] else {
            throw VaultKeyring.Failure(description: "credential \(row.id) holds no \(name)")
        }
        return secret
    }

    /// The `environment_variable` credentials among `rows` (a session's live credentials, as
    /// stored here or in the control plane's copy in Redis), unsealed with `keyring` (asked for
    /// only when there is something to open).
    public static func variableCredentials(_ rows: [CredentialRow], keyring: () throws -> VaultKeyring) throws -> [VariableCredential] {
        var opened: [VariableCredential] = []
        var ring: VaultKeyring?
        for (row, auth) in withAuth(rows) {
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

    /// The oldest live `static_bearer` or `mcp_oauth` credential among `rows` for the server at
    /// `serverURL` (compared without a trailing slash), unsealed; nil when none names it.
    public static func serverCredential(_ rows: [CredentialRow], serverURL: String, keyring: () throws -> VaultKeyring) throws -> ServerCredential? {
        func normalized(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
        let wanted = normalized(serverURL)
        for (row, auth) in withAuth(rows) where auth["mcp_server_url"]?.stringValue.map(normalized) == wanted {
            switch auth["type"]?.stringValue {
            case "static_bearer":
                return .bearer(try Self.secret(row, "token", keyring: try keyring()))
            case "mcp_oauth":
                let fields = try Self.secrets(row, keyring: try keyring())
                guard let access = fields["access_token"] else {
                    throw VaultKeyring.Failure(description: "credential \(row.id) holds no access_token")
                }
                let refresh = auth["refresh"]?.objectValue
                return .oauth(
                    OAuthCredential(
                        id: row.id, accessToken: access,
                        expiresAt: auth["expires_at"]?.stringValue.flatMap(Self.time),
                        refresh: refresh.flatMap { config in
                            guard let clientID = config["client_id"]?.stringValue, let endpoint = config["token_endpoint"]?.stringValue,
                                let token = fields["refresh_token"]
                            else { return nil }
                            return OAuthCredential.Refresh(
                                clientID: clientID, tokenEndpoint: endpoint,
                                authentication: config["token_endpoint_auth"]?.objectValue?["type"]?.stringValue ?? "none",
                                resource: config["resource"]?.stringValue, scope: config["scope"]?.stringValue, refreshToken: token,
                                clientSecret: fields["client_secret"])
                        }))
            default:
                continue
            }
        }
        return nil
    }

    /// Keeps what a token endpoint answered: the new access token (and refresh token, when it
    /// sent one) sealed, and the new expiry shown. One transaction.
    public func saveRefreshedTokens(
        credential id: String, accessToken: String, refreshToken: String?, expiresAt: Date?, keyring: VaultKeyring
    ) async throws {
        try await database.pool.write { db in
            guard let row = try CredentialRow.fetchOne(db, sql: "SELECT * FROM vault_credentials WHERE id = ?", arguments: [id]) else { return }
            var fields = try Self.secrets(row, keyring: keyring)
            fields["access_token"] = accessToken
            if let refreshToken { fields["refresh_token"] = refreshToken }
            let (sealed, keyID) = try keyring.seal(fields: fields, binding: id)
            var resource = (try? JSONValue.parse(row.resource))?.objectValue ?? [:]
            var auth = resource["auth"]?.objectValue ?? [:]
            auth["expires_at"] = expiresAt.map { .string(ControlPlaneStore.timestamp($0)) } ?? .null
            resource["auth"] = .object(auth)
            resource["updated_at"] = .string(ControlPlaneStore.timestamp())
            try db.execute(
                sql: "UPDATE vault_credentials SET sealed = ?, key_id = ?, resource = ? WHERE id = ?",
                arguments: [sealed, keyID, JSONValue.object(resource).compactJSON, id])
        }
    }

    private static func secrets(_ row: CredentialRow, keyring: VaultKeyring) throws -> [String: String] {
        try keyring.openFields(row.sealed, keyID: row.keyID, binding: row.id)
    }
}

/// A credential for an MCP server (or the web search backend), unsealed.
public enum ServerCredential: Sendable {
    case bearer(String)
    case oauth(OAuthCredential)
}

/// An `mcp_oauth` credential: its access token, when it expires, and how to refresh it.
public struct OAuthCredential: Sendable, CustomStringConvertible {
    public struct Refresh: Sendable {
        public let clientID: String
        public let tokenEndpoint: String
        /// `none`, `client_secret_basic` or `client_secret_post`.
        public let authentication: String
        public let resource: String?
        public let scope: String?
        public let refreshToken: String
        public let clientSecret: String?
    }
    public let id: String
    public let accessToken: String
    public let expiresAt: Date?
    public let refresh: Refresh?

    public var description: String { "OAuthCredential(\(id), tokens withheld)" }
}

extension ControlPlaneStore {
    /// An RFC 3339 time, with or without fractional seconds.
    static func time(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }
}
