import DroverCore
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
    /// `secret_value` or `token`; nil on an update that leaves the secret as it is.
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
            throw APIError(
                .notImplemented, "api_error", "auth.type: mcp_oauth credentials (and their refresh) are not built yet in Drover; use static_bearer")
        default:
            throw APIError.invalid("auth.type", "must be one of \(types.joined(separator: ", "))")
        }
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
    private static func secretString(_ fields: [String: JSONValue], _ name: String, required: Bool) throws -> String? {
        switch fields[name] {
        case .string(let text)?:
            guard !text.isEmpty, text.utf8.count <= 65536, !text.utf8.contains(0) else {
                throw APIError.invalid("auth.\(name)", "must be 1 byte to 64 KiB of text with no NUL byte (its value is not shown here)")
            }
            return text
        case nil, .null?:
            if required { throw APIError.invalid("auth.\(name)", "is required") }
            return nil
        case let other?:
            throw APIError.invalid("auth.\(name)", "must be a string, got \(other.kindName)")
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
