import DroverCore

/// Builds and updates the SDK's `BetaManagedAgentsAgent` JSON from create/update params.
enum AgentResource {
    static let createFields: Set<String> = [
        "model", "name", "description", "execution_identity", "mcp_servers", "metadata", "multiagent", "skills", "system", "tools",
    ]
    static let updateFields = createFields.union(["version"])
    static let toolNames: Set<String> = ["bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search"]

    static func create(id: String, params: [String: JSONValue], now: String) throws -> [String: JSONValue] {
        try params.rejectUnknown(createFields)
        guard params["model"] != nil else { throw APIError.invalid("model", "the field is required", fix: "pass a model id such as claude-sonnet-4-5") }
        guard let name = try params.string("name", required: true), !name.isEmpty else {
            throw APIError.invalid("name", "must be a non-empty string")
        }
        var agent: [String: JSONValue] = [
            "type": "agent", "id": .string(id), "version": 1, "name": .string(name),
            "created_at": .string(now), "updated_at": .string(now), "archived_at": .null,
            "description": .null, "system": .null, "metadata": .object([:]), "tools": .array([]),
            "skills": .array([]), "mcp_servers": .array([]), "multiagent": .null,
            "execution_identity": .object(["type": "service_account"]),
        ]
        try apply(params, to: &agent)
        return agent
    }

    /// Applies the fields present in `params` (create or update semantics: omitted fields stay).
    static func apply(_ params: [String: JSONValue], to agent: inout [String: JSONValue]) throws {
        if params["model"] != nil { agent["model"] = try model(params["model"]!) }
        if params["name"] != nil {
            guard let name = try params.string("name", nullable: false), !name.isEmpty else { throw APIError.invalid("name", "must be a non-empty string") }
            agent["name"] = .string(name)
        }
        for field in ["description", "system"] where params[field] != nil {
            let text = try params.string(field)
            agent[field] = text.flatMap { $0.isEmpty ? nil : JSONValue.string($0) } ?? .null
        }
        if let patch = try params.stringMap("metadata") { agent["metadata"] = try patchMetadata(agent["metadata"], patch) }
        if params["tools"] != nil {
            let tools = try (params.array("tools") ?? []).enumerated().map { try tool($1, path: "tools[\($0)]") }
            try checkNames(tools)
            agent["tools"] = .array(tools)
        }
        if let skills = try params.array("skills"), !skills.isEmpty {
            throw APIError.invalid("skills", "skills are not built yet in Drover", fix: "omit skills")
        }
        if let servers = try params.array("mcp_servers"), !servers.isEmpty {
            throw APIError.invalid("mcp_servers", "MCP servers are not built yet in Drover's API", fix: "omit mcp_servers")
        }
        if let multiagent = params["multiagent"], multiagent != .null {
            throw APIError.invalid("multiagent", "multiagent orchestration is not built yet in Drover", fix: "omit multiagent")
        }
        if let identity = params["execution_identity"], identity != .null,
           identity.objectValue?["type"]?.stringValue != "service_account" {
            throw APIError.invalid("execution_identity", "only {\"type\": \"service_account\"} is supported", fix: "omit it")
        }
    }

    /// One name per tool: custom tools must not repeat, nor take an enabled toolset tool's name.
    static func checkNames(_ tools: [JSONValue]) throws {
        var taken: [String: String] = [:]
        for (index, tool) in tools.enumerated() {
            let fields = tool.objectValue ?? [:]
            var names: [String] = []
            if fields["type"] == "custom", let name = fields["name"]?.stringValue { names = [name] }
            if fields["type"] == "agent_toolset_20260401" {
                if fields["configs"] != nil, fields["default_config"]?.objectValue?["enabled"] == .bool(true) {
                    names = toolNames.filter { name in
                        (fields["configs"]?.arrayValue ?? []).first { $0.objectValue?["name"]?.stringValue == name }?.objectValue?["enabled"] != .bool(false)
                    }.sorted()
                } else {
                    names = (fields["configs"]?.arrayValue ?? []).compactMap { $0.objectValue?["enabled"] == .bool(true) ? $0.objectValue?["name"]?.stringValue : nil }
                }
            }
            for name in names {
                if let other = taken[name] {
                    throw APIError.invalid("tools[\(index)]", "the tool name '\(name)' is already taken by \(other)",
                                           fix: "give each tool its own name", errorCode: "tool_name_conflict")
                }
                taken[name] = "tools[\(index)]"
            }
        }
    }

    static func model(_ value: JSONValue) throws -> JSONValue {
        switch value {
        case .string(let id) where !id.isEmpty:
            return .object(["id": .string(id), "speed": "standard"])
        case .object(let fields):
            guard case .string(let id)? = fields["id"], !id.isEmpty else { throw APIError.invalid("model.id", "must be a non-empty string") }
            try fields.rejectUnknown(["id", "effort", "inference_geo", "speed"])
            var config: [String: JSONValue] = ["id": .string(id), "speed": fields["speed"] ?? "standard"]
            if let speed = config["speed"]?.stringValue, speed != "standard", speed != "fast" {
                throw APIError.invalid("model.speed", "'\(speed)' is not standard or fast")
            }
            if let effort = fields["effort"], effort != .null { config["effort"] = effort }
            if let geo = fields["inference_geo"], geo != .null { config["inference_geo"] = geo }
            return .object(config)
        default:
            throw APIError.invalid("model", "must be a model id string or {\"id\": ...}, got \(value.kindName)")
        }
    }

    static func tool(_ value: JSONValue, path: String) throws -> JSONValue {
        guard case .object(let fields) = value else { throw APIError.invalid(path, "a tool must be an object") }
        switch fields["type"]?.stringValue {
        case "agent_toolset_20260401":
            try fields.rejectUnknown(["type", "configs", "default_config"])
            let defaults = fields["default_config"]?.objectValue ?? [:]
            let defaultConfig: JSONValue = .object([
                "enabled": .bool(try bool(defaults["enabled"], path: "\(path).default_config.enabled") ?? true),
                "permission_policy": try policy(defaults["permission_policy"], path: "\(path).default_config.permission_policy") ?? .object(["type": "always_allow"]),
            ])
            var configs: [JSONValue] = []
            for (index, item) in (try fields.array("configs") ?? []).enumerated() {
                let itemPath = "\(path).configs[\(index)]"
                guard let config = item.objectValue, let name = config["name"]?.stringValue else {
                    throw APIError.invalid("\(itemPath).name", "the field is required", fix: "use one of \(toolNames.sorted().joined(separator: ", "))")
                }
                guard toolNames.contains(name) else {
                    throw APIError.invalid("\(itemPath).name", "'\(name)' is not a toolset tool", fix: "use one of \(toolNames.sorted().joined(separator: ", "))")
                }
                var resolved = config
                resolved["type"] = .string(name)
                resolved["enabled"] = .bool(try bool(config["enabled"], path: "\(itemPath).enabled") ?? defaultConfig.objectValue!["enabled"]!.boolValue!)
                resolved["permission_policy"] = try policy(config["permission_policy"], path: "\(itemPath).permission_policy")
                    ?? defaultConfig.objectValue!["permission_policy"]!
                configs.append(.object(resolved))
            }
            return .object(["type": "agent_toolset_20260401", "default_config": defaultConfig, "configs": .array(configs)])
        case "custom":
            try fields.rejectUnknown(["type", "name", "description", "input_schema"])
            guard let name = try fields.string("name", required: true), !name.isEmpty else { throw APIError.invalid("\(path).name", "must be a non-empty string") }
            guard let description = try fields.string("description", required: true) else { throw APIError.invalid("\(path).description", "the field is required") }
            guard case .object(let schema)? = fields["input_schema"] else {
                throw APIError.invalid("\(path).input_schema", "must be a JSON Schema object", fix: "pass {\"type\": \"object\", \"properties\": {...}}")
            }
            var resolvedSchema = schema
            if resolvedSchema["type"] == nil { resolvedSchema["type"] = "object" }
            return .object(["type": "custom", "name": .string(name), "description": .string(description), "input_schema": .object(resolvedSchema)])
        case "mcp_toolset":
            throw APIError.invalid("\(path).type", "mcp_toolset is not built yet in Drover's API", fix: "use agent_toolset_20260401 or custom tools")
        case let other:
            throw APIError.invalid("\(path).type", "'\(other ?? "missing")' is not a tool type", fix: "use agent_toolset_20260401 or custom")
        }
    }

    static func bool(_ value: JSONValue?, path: String) throws -> Bool? {
        switch value {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw APIError.invalid(path, "must be a boolean, got \(other.kindName)")
        }
    }

    static func policy(_ value: JSONValue?, path: String) throws -> JSONValue? {
        switch value {
        case nil, .null?: return nil
        case .object(let fields)?:
            guard let type = fields["type"]?.stringValue, ["always_allow", "always_ask"].contains(type) else {
                throw APIError.invalid("\(path).type", "use always_allow or always_ask (auto is not built yet)")
            }
            return .object(["type": .string(type)])
        case let other?: throw APIError.invalid(path, "must be an object, got \(other.kindName)")
        }
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}
