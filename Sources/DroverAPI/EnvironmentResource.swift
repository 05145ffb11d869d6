import DroverCore
import DroverHands
import DroverTools

/// Builds and updates the SDK's `BetaEnvironment` JSON. The `cloud` config (packages,
/// networking) is stored as given, resolved to the SDK's full shape, for the sandbox pool to read.
enum EnvironmentResource {
    static let fields: Set<String> = ["name", "config", "description", "metadata", "scope"]
    static let packageManagers = ["apt", "cargo", "gem", "go", "npm", "pip"]

    static func create(id: String, request: CreateEnvironmentRequest, now: String) throws -> [String: JSONValue] {
        var environment: [String: JSONValue] = [
            "type": "environment", "id": .string(id), "name": .string(request.name), "created_at": .string(now), "updated_at": .string(now),
            "archived_at": .null, "description": .null, "metadata": .object([:]), "scope": "organization",
            "config": try config(nil),
        ]
        try apply(request.changes, to: &environment)
        return environment
    }

    static func apply(_ changes: UpdateEnvironmentRequest, to environment: inout [String: JSONValue]) throws {
        if let name = changes.name { environment["name"] = .string(name) }
        if let description = changes.description { environment["description"] = description.map(JSONValue.string) ?? .null }
        if let config = changes.config { environment["config"] = config }
        if let patch = changes.metadataPatch { environment["metadata"] = try patchMetadata(environment["metadata"], patch) }
        if let scope = changes.scope { environment["scope"] = .string(scope) }
    }

    static func config(_ value: JSONValue?) throws -> JSONValue {
        let fields: [String: JSONValue]
        switch value {
        case nil, .null?: fields = ["type": "cloud"]
        case .object(let object)?: fields = object
        case let other?: throw APIError.invalid("config", "must be an object, got \(other.kindName)")
        }
        switch fields["type"]?.stringValue {
        case "cloud":
            break
        case "self_hosted":
            // Its sessions' sandbox tools run on the user's own workers, which bring their own
            // packages and network: there is nothing else to configure.
            try fields.rejectUnknown(["type"], prefix: "config")
            return .object(["type": "self_hosted"])
        case let other:
            throw APIError.invalid(
                "config.type", "'\(other ?? "missing")' is not an environment type",
                fix: "use {\"type\": \"cloud\"} for Drover's sandboxes, or {\"type\": \"self_hosted\"} for workers on your own machines")
        }
        try fields.rejectUnknown(["type", "networking", "packages"])
        var packages: [String: JSONValue] = ["type": "packages"]
        let given = fields["packages"]?.objectValue ?? [:]
        if let packagesValue = fields["packages"], packagesValue != .null, packagesValue.objectValue == nil {
            throw APIError.invalid("config.packages", "must be an object of package lists")
        }
        try given.rejectUnknown(Set(packageManagers + ["type"]))
        for manager in packageManagers {
            let list = try given.array(manager) ?? []
            for (index, item) in list.enumerated() where item.stringValue == nil {
                throw APIError.invalid("config.packages.\(manager)[\(index)]", "must be a string")
            }
            packages[manager] = .array(list)
        }
        let networking: JSONValue
        switch fields["networking"] {
        // Drover's default is no network at all: a sandbox reaches only what its environment names.
        case nil, .null?:
            networking = .object([
                "type": "limited", "allowed_hosts": .array([]), "allow_mcp_servers": .bool(false), "allow_package_managers": .bool(false),
            ])
        case .object(let net)?:
            try net.rejectUnknown(["type", "allowed_hosts", "allow_mcp_servers", "allow_package_managers"], prefix: "config.networking")
            switch net["type"]?.stringValue {
            case "unrestricted": networking = .object(["type": "unrestricted"])
            case "limited":
                // Entries are checked (and kept) as given; `checkBuilt` names a bad one's index.
                let hosts = try net.array("allowed_hosts") ?? []
                networking = .object([
                    "type": "limited", "allowed_hosts": .array(hosts),
                    "allow_mcp_servers": .bool(try JSONValue.bool(net["allow_mcp_servers"], path: "config.networking.allow_mcp_servers") ?? false),
                    "allow_package_managers": .bool(
                        try JSONValue.bool(net["allow_package_managers"], path: "config.networking.allow_package_managers") ?? false),
                ])
            default: throw APIError.invalid("config.networking.type", "use unrestricted or limited")
            }
        case let other?: throw APIError.invalid("config.networking", "must be an object, got \(other.kindName)")
        }
        let config = JSONValue.object(["type": "cloud", "packages": .object(packages), "networking": networking])
        try checkBuilt(config)
        return config
    }

    /// The hands' reading of the config: what they cannot honour yet answers 501, never a
    /// silent downgrade.
    static func checkBuilt(_ config: JSONValue) throws {
        do {
            _ = try EnvironmentConfig.parse(config)
        } catch let notBuilt as EnvironmentConfig.NotBuiltYet {
            throw APIError(.notImplemented, "api_error", "\(notBuilt.field): \(notBuilt.detail)")
        } catch let invalid as EnvironmentConfig.Invalid {
            throw APIError.invalid(invalid.field ?? "config", invalid.message)
        }
    }
}
