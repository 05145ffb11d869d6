import DroverCore
import DroverDatabase
import DroverTools
import Foundation

/// `POST /v1/vaults` and `POST /v1/vaults/{id}`.
struct VaultRequest: APIRequestBody {
    static let fields: Set<String> = ["display_name", "metadata"]
    let displayName: String?
    let metadataPatch: [String: JSONValue]?

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        displayName = try body.string("display_name")
        if let displayName, !(1...255).contains(displayName.count) {
            throw APIError.invalid("display_name", "must be 1 to 255 characters, not \(displayName.count)")
        }
        metadataPatch = try body.stringMap("metadata")
    }
}

/// A credential's `auth` as the API takes it: the part the API shows (`shown`, the SDK's
/// `*AuthResponse`), and the secret part, which is sealed and never shown (`secret`).
struct CredentialAuth {
    var shown: [String: JSONValue]
    /// `secret_value`, `token`, or an OAuth credential's tokens and client secret; on an update,
    /// the fields that change (merged into the stored ones), or nil when none does.
    var secret: [String: String]?

    static let types = ["environment_variable", "static_bearer", "mcp_oauth"]

    /// The `auth` of a new credential.
    static func creating(_ value: JSONValue?) throws -> CredentialAuth {
        let fields = try object(value)
        switch fields["type"]?.stringValue {
        case "environment_variable":
            try fields.rejectUnknown(["type", "secret_name", "secret_value", "networking", "injection_location"], prefix: "auth")
            guard let name = try fields.string("secret_name", required: true), Self.isVariableName(name) else {
                throw APIError.invalid(
                    "auth.secret_name", "must be an environment variable name",
                    fix: "use letters, digits and underscores, not starting with a digit, such as GITHUB_TOKEN")
            }
            let injection = try injectionLocation(fields["injection_location"], current: ["header": .bool(true), "body": .bool(false)])
            return CredentialAuth(
                shown: [
                    "type": "environment_variable", "secret_name": .string(name),
                    "networking": try networking(fields["networking"], required: true)!, "injection_location": injection,
                ],
                secret: ["secret_value": try secretString(fields, "secret_value", required: true)!])
        case "static_bearer":
            try fields.rejectUnknown(["type", "token", "mcp_server_url"], prefix: "auth")
            return CredentialAuth(
                shown: ["type": "static_bearer", "mcp_server_url": .string(try serverURL(fields))],
                secret: ["token": try secretString(fields, "token", required: true)!])
        case "mcp_oauth":
            try fields.rejectUnknown(["type", "mcp_server_url", "access_token", "expires_at", "refresh"], prefix: "auth")
            var secret = ["access_token": try secretString(fields, "access_token", required: true)!]
            var shown: [String: JSONValue] = [
                "type": "mcp_oauth", "mcp_server_url": .string(try serverURL(fields)), "expires_at": try expiry(fields["expires_at"]) ?? .null,
                "refresh": .null,
            ]
            if let refresh = fields["refresh"], refresh != .null {
                let (refreshShown, refreshSecret) = try refreshConfig(refresh)
                shown["refresh"] = .object(refreshShown)
                secret.merge(refreshSecret) { _, new in new }
            }
            return CredentialAuth(shown: shown, secret: secret)
        default:
            throw APIError.invalid("auth.type", "must be one of \(types.joined(separator: ", "))")
        }
    }

    /// `expires_at` in RFC 3339, in the future; nil when absent or null.
    private static func expiry(_ value: JSONValue?) throws -> JSONValue? {
        guard let value, value != .null else { return nil }
        guard let text = value.stringValue, let date = ISO8601DateFormatter.withFractions.date(from: text) ?? ISO8601DateFormatter().date(from: text)
        else {
            throw APIError.invalid("auth.expires_at", "must be an RFC 3339 time such as 2026-12-31T23:59:59Z")
        }
        guard date > Date() else { throw APIError.invalid("auth.expires_at", "must be in the future") }
        return .string(ControlPlaneStore.timestamp(date))
    }

    /// An `mcp_oauth` credential's `refresh`: what is shown, and its secrets (the refresh token
    /// and the client secret).
    private static func refreshConfig(_ value: JSONValue) throws -> ([String: JSONValue], [String: String]) {
        guard let fields = value.objectValue else { throw APIError.invalid("auth.refresh", "must be an object or null") }
        try fields.rejectUnknown(
            ["client_id", "refresh_token", "token_endpoint", "token_endpoint_auth", "resource", "scope"], prefix: "auth.refresh")
        guard let clientID = try fields.string("client_id", required: true), !clientID.isEmpty, clientID.utf8.count <= 1024 else {
            throw APIError.invalid("auth.refresh.client_id", "must be 1 to 1024 bytes")
        }
        let endpoint = try refreshEndpoint(fields)
        var secret = ["refresh_token": try secretString(fields, "refresh_token", required: true, path: "auth.refresh")!]
        guard let auth = fields["token_endpoint_auth"]?.objectValue else {
            throw APIError.invalid(
                "auth.refresh.token_endpoint_auth", "is required",
                fix: "send {\"type\": \"none\"}, or client_secret_basic or client_secret_post with client_secret")
        }
        let authType = auth["type"]?.stringValue ?? ""
        switch authType {
        case "none":
            try auth.rejectUnknown(["type"], prefix: "auth.refresh.token_endpoint_auth")
        case "client_secret_basic", "client_secret_post":
            try auth.rejectUnknown(["type", "client_secret"], prefix: "auth.refresh.token_endpoint_auth")
            secret["client_secret"] = try secretString(auth, "client_secret", required: true, path: "auth.refresh.token_endpoint_auth")!
        default:
            throw APIError.invalid("auth.refresh.token_endpoint_auth.type", "must be none, client_secret_basic or client_secret_post")
        }
        var shown: [String: JSONValue] = [
            "client_id": .string(clientID), "token_endpoint": .string(endpoint), "token_endpoint_auth": .object(["type": .string(authType)]),
            "resource": .null, "scope": .null,
        ]
        for name in ["resource", "scope"] {
            if let text = try fields.string(name), !text.isEmpty { shown[name] = .string(String(text.prefix(2048))) }
        }
        return (shown, secret)
    }

    private static func refreshEndpoint(_ fields: [String: JSONValue]) throws -> String {
        guard let text = try fields.string("token_endpoint", required: true), text.utf8.count <= 2048, let components = URLComponents(string: text),
            ["http", "https"].contains(components.scheme?.lowercased() ?? ""), components.host?.isEmpty == false, components.user == nil
        else {
            throw APIError.invalid(
                "auth.refresh.token_endpoint", "must be an http or https URL",
                fix: "use the authorization server's token endpoint, such as https://auth.example.com/oauth/token")
        }
        return text
    }

    /// The `auth` of an update to a credential shown as `current`: the type cannot change, nor
    /// the variable's name or the server's URL; what is left out stays.
    static func updating(_ value: JSONValue?, current: [String: JSONValue]) throws -> CredentialAuth {
        let fields = try object(value)
        let type = current["type"]?.stringValue ?? ""
        guard fields["type"]?.stringValue == type else {
            throw APIError.invalid("auth.type", "must be \(type), the credential's type, which cannot change")
        }
        var shown = current
        var secret: [String: String]?
        switch type {
        case "environment_variable":
            try fields.rejectUnknown(["type", "secret_value", "networking", "injection_location"], prefix: "auth")
            if let networking = try networking(fields["networking"], required: false) { shown["networking"] = networking }
            if fields["injection_location"] != nil {
                shown["injection_location"] = try injectionLocation(
                    fields["injection_location"], current: current["injection_location"]?.objectValue ?? [:])
            }
            secret = try secretString(fields, "secret_value", required: false).map { ["secret_value": $0] }
        case "static_bearer":
            try fields.rejectUnknown(["type", "token"], prefix: "auth")
            secret = try secretString(fields, "token", required: false).map { ["token": $0] }
        case "mcp_oauth":
            try fields.rejectUnknown(["type", "access_token", "expires_at", "refresh"], prefix: "auth")
            var patch: [String: String] = [:]
            if let token = try secretString(fields, "access_token", required: false) { patch["access_token"] = token }
            if fields["expires_at"] != nil { shown["expires_at"] = try expiry(fields["expires_at"]) ?? .null }
            if let refresh = fields["refresh"], refresh != .null {
                guard var stored = current["refresh"]?.objectValue else {
                    throw APIError.invalid(
                        "auth.refresh", "the credential has no refresh configuration to update", fix: "create a new credential with refresh")
                }
                guard let update = refresh.objectValue else { throw APIError.invalid("auth.refresh", "must be an object") }
                try update.rejectUnknown(["refresh_token", "scope", "token_endpoint_auth"], prefix: "auth.refresh")
                if let token = try secretString(update, "refresh_token", required: false, path: "auth.refresh") { patch["refresh_token"] = token }
                if let scope = try update.string("scope") { stored["scope"] = scope.isEmpty ? .null : .string(String(scope.prefix(2048))) }
                if let auth = update["token_endpoint_auth"], auth != .null {
                    guard let fields = auth.objectValue else { throw APIError.invalid("auth.refresh.token_endpoint_auth", "must be an object") }
                    try fields.rejectUnknown(["type", "client_secret"], prefix: "auth.refresh.token_endpoint_auth")
                    // The stored method stays (the SDK's rule); only its secret is replaced.
                    guard
                        ["client_secret_basic", "client_secret_post"].contains(stored["token_endpoint_auth"]?.objectValue?["type"]?.stringValue ?? "")
                    else {
                        throw APIError.invalid("auth.refresh.token_endpoint_auth", "the credential's token endpoint takes no client secret")
                    }
                    if let clientSecret = try secretString(fields, "client_secret", required: false, path: "auth.refresh.token_endpoint_auth") {
                        patch["client_secret"] = clientSecret
                    }
                }
                shown["refresh"] = .object(stored)
            }
            secret = patch.isEmpty ? nil : patch
        default:
            throw APIError.invalid("auth.type", "\(type) credentials cannot be updated here")
        }
        return CredentialAuth(shown: shown, secret: secret)
    }

    private static func object(_ value: JSONValue?) throws -> [String: JSONValue] {
        guard let fields = value?.objectValue else {
            throw APIError.invalid(
                "auth", "must be an object with a type", fix: "for example {\"type\": \"static_bearer\", \"mcp_server_url\": ..., \"token\": ...}")
        }
        return fields
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(48...57).contains(first), name.utf8.count <= 128 else { return false }
        return name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 }
    }

    /// A secret string: never echoed, in an error or anywhere else.
    private static func secretString(_ fields: [String: JSONValue], _ name: String, required: Bool, path: String = "auth") throws -> String? {
        switch fields[name] {
        case .string(let text)?:
            guard !text.isEmpty, text.utf8.count <= 65536, !text.utf8.contains(0) else {
                throw APIError.invalid("\(path).\(name)", "must be 1 byte to 64 KiB of text with no NUL byte (its value is not shown here)")
            }
            return text
        case nil, .null?:
            if required { throw APIError.invalid("\(path).\(name)", "is required") }
            return nil
        case let other?:
            throw APIError.invalid("\(path).\(name)", "must be a string, got \(other.kindName)")
        }
    }

    private static func serverURL(_ fields: [String: JSONValue]) throws -> String {
        guard let text = try fields.string("mcp_server_url", required: true), text.utf8.count <= 2048,
            let components = URLComponents(string: text), ["http", "https"].contains(components.scheme?.lowercased() ?? ""),
            let host = components.host, !host.isEmpty
        else {
            throw APIError.invalid(
                "auth.mcp_server_url", "must be an http or https URL", fix: "use the server's endpoint, such as https://mcp.example.com/mcp")
        }
        return text
    }

    /// The SDK's credential networking: `unrestricted`, or `limited` with 1 to 16 hosts.
    private static func networking(_ value: JSONValue?, required: Bool) throws -> JSONValue? {
        guard let value, value != .null else {
            if required {
                throw APIError.invalid(
                    "auth.networking", "is required",
                    fix: "say where the secret may be sent: {\"type\": \"limited\", \"allowed_hosts\": [\"api.example.com\"]}")
            }
            return nil
        }
        guard let fields = value.objectValue else { throw APIError.invalid("auth.networking", "must be an object") }
        try fields.rejectUnknown(["type", "allowed_hosts"], prefix: "auth.networking")
        switch fields["type"]?.stringValue {
        case "unrestricted":
            return .object(["type": "unrestricted"])
        case "limited":
            guard let hosts = try fields.array("allowed_hosts"), (1...16).contains(hosts.count) else {
                throw APIError.invalid("auth.networking.allowed_hosts", "must list 1 to 16 hosts")
            }
            for (index, host) in hosts.enumerated() {
                guard let text = host.stringValue else { throw APIError.invalid("auth.networking.allowed_hosts[\(index)]", "must be a string") }
                do {
                    _ = try HostPattern(text)
                } catch {
                    throw APIError.invalid("auth.networking.allowed_hosts[\(index)]", error.message)
                }
            }
            return .object(["type": "limited", "allowed_hosts": .array(hosts)])
        default:
            throw APIError.invalid("auth.networking.type", "must be unrestricted or limited")
        }
    }

    /// `header` and `body`, each kept from `current` when left out; at least one stays on.
    private static func injectionLocation(_ value: JSONValue?, current: [String: JSONValue]) throws -> JSONValue {
        var location = current
        if let value, value != .null {
            guard let fields = value.objectValue else { throw APIError.invalid("auth.injection_location", "must be an object") }
            try fields.rejectUnknown(["header", "body"], prefix: "auth.injection_location")
            for name in ["header", "body"] {
                if let flag = try JSONValue.bool(fields[name], path: "auth.injection_location.\(name)") { location[name] = .bool(flag) }
            }
        }
        guard location["header"] == .bool(true) || location["body"] == .bool(true) else {
            throw APIError.invalid("auth.injection_location", "must enable header, body or both")
        }
        return .object(["header": location["header"] ?? .bool(false), "body": location["body"] ?? .bool(false)])
    }
}

/// `POST /v1/vaults/{id}/credentials`.
struct CreateCredentialRequest: APIRequestBody {
    static let fields: Set<String> = ["auth", "display_name", "metadata"]
    let auth: CredentialAuth
    let displayName: String?
    let metadata: [String: JSONValue]?

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        auth = try CredentialAuth.creating(body["auth"])
        displayName = try body.string("display_name")
        if let displayName, displayName.count > 255 { throw APIError.invalid("display_name", "must be at most 255 characters") }
        metadata = try body.stringMap("metadata")
    }
}

/// `POST /v1/vaults/{id}/credentials/{credential_id}`: the raw `auth`, read against the stored
/// credential by `CredentialAuth.updating`.
struct UpdateCredentialRequest: APIRequestBody {
    static let fields: Set<String> = ["auth", "display_name", "metadata", "vault_id"]
    let auth: JSONValue?
    /// nil: unchanged; `.some(nil)`: cleared.
    let displayName: String??
    let metadataPatch: [String: JSONValue]?

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        auth = body["auth"].flatMap { $0 == .null ? nil : $0 }
        displayName = body["display_name"] == nil ? nil : .some(try body.string("display_name"))
        if case .some(let name?) = displayName, !(1...255).contains(name.count) {
            throw APIError.invalid("display_name", "must be 1 to 255 characters")
        }
        metadataPatch = try body.stringMap("metadata")
    }
}
