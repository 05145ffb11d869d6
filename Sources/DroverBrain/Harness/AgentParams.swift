import DroverCore
import DroverTools
import Foundation

/// The one check of an agent, in the SDK's create/update params shape, for every place an agent
/// is written: the API's `/v1/agents`, and the inline agents of job and schedule files. A body is
/// read into this typed value once (errors name the field and the fix); the value then builds or
/// changes the SDK's `BetaManagedAgentsAgent` JSON.
public struct AgentParams: Sendable {
    /// Where the agent comes from. MCP servers are connections a worker opens from its host, so
    /// only the operator's own files may name them until the egress policy of issue 14 decides
    /// which hosts an API client may have a worker reach.
    public enum Origin: Sendable {
        case api, file
    }

    public static let createFields: Set<String> = [
        "model", "name", "description", "execution_identity", "mcp_servers", "metadata", "multiagent", "skills", "system", "tools",
    ]
    public static let updateFields = createFields.union(["version"])
    static let toolNames: Set<String> = ["bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search"]

    /// Each field: nil when absent (unchanged); for `description` and `system`, `.some(nil)`
    /// clears.
    public let model: JSONValue?
    public let name: String?
    public let description: String??
    public let system: String??
    /// Keys to set, and keys to delete (`null`).
    public let metadataPatch: [String: JSONValue]?
    /// The tools resolved to the SDK's full shapes.
    public let tools: [JSONValue]?
    public let mcpServers: [JSONValue]?
    /// `multiagent` as sent: nil when absent, `.some(nil)` to clear. Not applied by `apply`: the
    /// API checks it against the agent store and writes the resolved form.
    public let multiagent: JSONValue??

    /// Reads a create or update body (without `version`, which only the API's update takes).
    public init(_ params: [String: JSONValue], origin: Origin = .api) throws(FieldError) {
        model = try params["model"].map { (value) throws(FieldError) in try Self.model(value) }
        if params["name"] != nil {
            guard let name = try params.string("name", nullable: false), !name.isEmpty else {
                throw FieldError(field: "name", message: "must be a non-empty string", fix: nil)
            }
            self.name = name
        } else {
            name = nil
        }
        func text(_ field: String) throws(FieldError) -> String?? {
            guard params[field] != nil else { return nil }
            return .some(try params.string(field).flatMap { $0.isEmpty ? nil : $0 })
        }
        description = try text("description")
        system = try text("system")
        metadataPatch = try params.stringMap("metadata")
        if params["tools"] != nil {
            var tools: [JSONValue] = []
            for (index, item) in (try params.array("tools") ?? []).enumerated() {
                tools.append(try Self.tool(item, path: "tools[\(index)]", origin: origin))
            }
            try Self.checkNames(tools)
            self.tools = tools
        } else {
            tools = nil
        }
        if let skills = try params.array("skills"), !skills.isEmpty {
            throw FieldError(field: "skills", message: "skills are not built yet in Drover", fix: "omit skills")
        }
        if let servers = try params.array("mcp_servers"), !servers.isEmpty {
            guard servers.count <= 20 else {
                throw FieldError(field: "mcp_servers", message: "at most 20 servers, not \(servers.count)", fix: "name fewer servers")
            }
            for (index, server) in servers.enumerated() {
                let definition = try Self.decoded(MCPServerDefinition.self, server, path: "mcp_servers[\(index)]")
                // A stdio server is a command on the worker's host: only the operator's files may
                // start one. A URL server is reached by the worker under the egress rules.
                if origin == .api, definition.type != .url {
                    throw FieldError(
                        field: "mcp_servers[\(index)].type", message: "must be \"url\": a stdio server would run a command on the worker's host",
                        fix: "serve it over HTTP and give its url, or name it in a job or schedule file")
                }
                if definition.type == .url, definition.endpoint == nil {
                    throw FieldError(
                        field: "mcp_servers[\(index)].url", message: "must be an http:// or https:// URL with a host",
                        fix: "for example https://mcp.example.com/mcp")
                }
            }
            mcpServers = servers
        } else {
            mcpServers = nil
        }
        if let multiagent = params["multiagent"] {
            // Which agents a roster names needs the agent store: the API checks and resolves it
            // (`MultiagentParams`, `MultiagentResolution`). A file's agent has no store to name.
            if origin == .file, multiagent != .null {
                try Self.checkFileRoster(multiagent)
            }
            self.multiagent = .some(multiagent == .null ? nil : multiagent)
        } else {
            self.multiagent = nil
        }
        if let identity = params["execution_identity"], identity != .null,
            identity.objectValue?["type"]?.stringValue != "service_account"
        {
            throw FieldError(field: "execution_identity", message: "only {\"type\": \"service_account\"} is supported", fix: "omit it")
        }
    }

    /// A job or schedule file's coordinator: `{type: coordinator, agents: [...]}` whose agents are
    /// written in the file (name, model, system, tools; and a `playbook` for the scripted model),
    /// or `{type: self}`. A file has no agent store for a roster to name.
    static func checkFileRoster(_ value: JSONValue) throws(FieldError) {
        guard case .object(let fields) = value, fields["type"] == "coordinator" else {
            throw FieldError(
                field: "multiagent", message: "a file's coordinator is {type: coordinator, agents: [...]}",
                fix: "list the roster's agents under agents:, each with name, model and system")
        }
        try at("multiagent") { () throws(FieldError) in try fields.rejectUnknown(["type", "agents"]) }
        guard let agents = fields["agents"]?.arrayValue, (1...MultiagentParams.maximumEntries).contains(agents.count) else {
            throw FieldError(field: "multiagent.agents", message: "must list 1 to \(MultiagentParams.maximumEntries) agents", fix: nil)
        }
        var names = Set<String>()
        for (index, entry) in agents.enumerated() {
            let path = "multiagent.agents[\(index)]"
            guard case .object(var agent) = entry else {
                throw FieldError(
                    field: path, message: "must be an agent written out (name, model, system)", fix: "a file has no stored agents to name")
            }
            if agent["type"] == "self" {
                try at(path) { () throws(FieldError) in try agent.rejectUnknown(["type"]) }
                guard names.insert("self").inserted else { throw FieldError(field: path, message: "names self again", fix: nil) }
                continue
            }
            agent.removeValue(forKey: "playbook")
            guard let name = agent["name"]?.stringValue, !name.isEmpty else {
                throw FieldError(field: "\(path).name", message: "is missing", fix: "name the agent: the coordinator's model calls it by its name")
            }
            guard names.insert(name).inserted else { throw FieldError(field: "\(path).name", message: "'\(name)' is in the roster twice", fix: nil) }
            if agent["multiagent"] != nil, agent["multiagent"] != .null {
                throw FieldError(
                    field: "\(path).multiagent", message: "a roster agent coordinates nothing itself; threads go one level deep", fix: "remove it")
            }
            _ = try at(path) { () throws(FieldError) in try creating(agent, origin: .file) }
        }
    }

    /// Reads a create body: `model` is required, and `name` too for the API.
    public static func creating(_ params: [String: JSONValue], origin: Origin = .api) throws(FieldError) -> AgentParams {
        try params.rejectUnknown(createFields)
        guard params["model"] != nil else { throw FieldError(field: "model", message: "is missing", fix: "set a model id such as claude-sonnet-4-5") }
        // Missing or null throws; a file's agent may go unnamed, and is then "inline".
        if origin == .api { _ = try params.string("name", required: true) }
        return try AgentParams(params, origin: origin)
    }

    /// The SDK's agent resource at version 1.
    public func resource(id: String, now: String) throws(FieldError) -> [String: JSONValue] {
        var agent: [String: JSONValue] = [
            "type": "agent", "id": .string(id), "version": 1, "name": .string(name ?? "inline"),
            "created_at": .string(now), "updated_at": .string(now), "archived_at": .null,
            "description": .null, "system": .null, "metadata": .object([:]), "tools": .array([]),
            "skills": .array([]), "mcp_servers": .array([]), "multiagent": .null,
            "execution_identity": .object(["type": "service_account"]),
        ]
        try apply(to: &agent)
        return agent
    }

    /// Applies the fields given (update semantics: omitted fields stay).
    public func apply(to agent: inout [String: JSONValue]) throws(FieldError) {
        if let model { agent["model"] = model }
        if let name { agent["name"] = .string(name) }
        if let description { agent["description"] = description.map(JSONValue.string) ?? .null }
        if let system { agent["system"] = system.map(JSONValue.string) ?? .null }
        if let metadataPatch { agent["metadata"] = try patchMetadata(agent["metadata"], metadataPatch) }
        if let tools { agent["tools"] = .array(tools) }
        if let mcpServers { agent["mcp_servers"] = .array(mcpServers) }
    }

    /// One name per tool: custom tools must not repeat, nor take an enabled toolset tool's name.
    static func checkNames(_ tools: [JSONValue]) throws(FieldError) {
        var taken: [String: String] = [:]
        for (index, tool) in tools.enumerated() {
            let fields = tool.objectValue ?? [:]
            var names: [String] = []
            if fields["type"] == "custom", let name = fields["name"]?.stringValue { names = [name] }
            if fields["type"] == "agent_toolset_20260401" {
                if fields["configs"] != nil, fields["default_config"]?.objectValue?["enabled"] == .bool(true) {
                    names = toolNames.filter { name in
                        (fields["configs"]?.arrayValue ?? []).first { $0.objectValue?["name"]?.stringValue == name }?.objectValue?["enabled"]
                            != .bool(false)
                    }.sorted()
                } else {
                    names = (fields["configs"]?.arrayValue ?? []).compactMap {
                        $0.objectValue?["enabled"] == .bool(true) ? $0.objectValue?["name"]?.stringValue : nil
                    }
                }
            }
            for name in names {
                if let other = taken[name] {
                    throw FieldError(
                        field: "tools[\(index)]", message: "the tool name '\(name)' is already taken by \(other)",
                        fix: "give each tool its own name", code: "tool_name_conflict")
                }
                taken[name] = "tools[\(index)]"
            }
        }
    }

    static func model(_ value: JSONValue) throws(FieldError) -> JSONValue {
        switch value {
        case .string(let id) where !id.isEmpty:
            return .object(["id": .string(id), "speed": "standard"])
        case .object(let fields):
            guard case .string(let id)? = fields["id"], !id.isEmpty else {
                throw FieldError(field: "model.id", message: "must be a non-empty string", fix: nil)
            }
            try fields.rejectUnknown(["id", "effort", "inference_geo", "speed"])
            var config: [String: JSONValue] = ["id": .string(id), "speed": fields["speed"] ?? "standard"]
            if let speed = config["speed"]?.stringValue, speed != "standard", speed != "fast" {
                throw FieldError(field: "model.speed", message: "'\(speed)' is not standard or fast", fix: nil)
            }
            if let effort = fields["effort"], effort != .null { config["effort"] = effort }
            if let geo = fields["inference_geo"], geo != .null { config["inference_geo"] = geo }
            return .object(config)
        default:
            throw FieldError(field: "model", message: "must be a model id string or {\"id\": ...}, got \(value.kindName)", fix: nil)
        }
    }

    static func tool(_ value: JSONValue, path: String, origin: Origin) throws(FieldError) -> JSONValue {
        guard case .object(let fields) = value else { throw FieldError(field: path, message: "a tool must be an object", fix: nil) }
        let toolFix = "use one of \(toolNames.sorted().joined(separator: ", "))"
        switch fields["type"]?.stringValue {
        case "agent_toolset_20260401":
            try at(path) { () throws(FieldError) in try fields.rejectUnknown(["type", "configs", "default_config"]) }
            let defaults = fields["default_config"]?.objectValue ?? [:]
            try at("\(path).default_config") { () throws(FieldError) in try defaults.rejectUnknown(["enabled", "permission_policy"]) }
            let defaultConfig: JSONValue = .object([
                "enabled": .bool(try JSONValue.bool(defaults["enabled"], path: "\(path).default_config.enabled") ?? true),
                "permission_policy": try policy(defaults["permission_policy"], path: "\(path).default_config.permission_policy")
                    ?? .object(["type": "always_allow"]),
            ])
            var configs: [JSONValue] = []
            let configItems = try at(path) { () throws(FieldError) -> [JSONValue]? in try fields.array("configs") } ?? []
            for (index, item) in configItems.enumerated() {
                let itemPath = "\(path).configs[\(index)]"
                guard let config = item.objectValue, let name = config["name"]?.stringValue else {
                    throw FieldError(field: "\(itemPath).name", message: "is missing", fix: toolFix)
                }
                try at(itemPath) { () throws(FieldError) in try config.rejectUnknown(["name", "enabled", "permission_policy"]) }
                guard toolNames.contains(name) else {
                    throw FieldError(field: "\(itemPath).name", message: "'\(name)' is not a toolset tool", fix: toolFix)
                }
                var resolved = config
                resolved["type"] = .string(name)
                resolved["enabled"] = .bool(
                    try JSONValue.bool(config["enabled"], path: "\(itemPath).enabled") ?? defaultConfig.objectValue!["enabled"]!.boolValue!)
                resolved["permission_policy"] =
                    try policy(config["permission_policy"], path: "\(itemPath).permission_policy")
                    ?? defaultConfig.objectValue!["permission_policy"]!
                configs.append(.object(resolved))
            }
            return .object(["type": "agent_toolset_20260401", "default_config": defaultConfig, "configs": .array(configs)])
        case "custom":
            let (name, description) = try at(path) { () throws(FieldError) -> (String?, String?) in
                try fields.rejectUnknown(["type", "name", "description", "input_schema"])
                return (try fields.string("name", required: true), try fields.string("description", required: true))
            }
            guard let name, !name.isEmpty else { throw FieldError(field: "\(path).name", message: "must be a non-empty string", fix: nil) }
            guard let description else { throw FieldError(field: "\(path).description", message: "is missing", fix: "describe what the tool does") }
            guard case .object(let schema)? = fields["input_schema"] else {
                throw FieldError(
                    field: "\(path).input_schema", message: "must be a JSON Schema object", fix: "pass {\"type\": \"object\", \"properties\": {...}}")
            }
            var resolvedSchema = schema
            if resolvedSchema["type"] == nil { resolvedSchema["type"] = "object" }
            return .object(["type": "custom", "name": .string(name), "description": .string(description), "input_schema": .object(resolvedSchema)])
        case "mcp_toolset":
            // Resolved as the SDK shows it: enabled, and always_ask unless said otherwise.
            let server = try at(path) { () throws(FieldError) -> String? in
                try fields.rejectUnknown(["type", "mcp_server_name", "default_config", "configs"])
                return try fields.string("mcp_server_name", required: true)
            }
            guard let server, !server.isEmpty else {
                throw FieldError(field: "\(path).mcp_server_name", message: "must name one of mcp_servers", fix: nil)
            }
            let defaults = fields["default_config"]?.objectValue ?? [:]
            try at("\(path).default_config") { () throws(FieldError) in try defaults.rejectUnknown(["enabled", "permission_policy"]) }
            let enabled = try JSONValue.bool(defaults["enabled"], path: "\(path).default_config.enabled") ?? true
            let permission =
                try policy(defaults["permission_policy"], path: "\(path).default_config.permission_policy") ?? .object(["type": "always_ask"])
            var configs: [JSONValue] = []
            for (index, item) in (try at(path) { () throws(FieldError) -> [JSONValue]? in try fields.array("configs") } ?? []).enumerated() {
                let itemPath = "\(path).configs[\(index)]"
                guard let config = item.objectValue, let name = config["name"]?.stringValue, !name.isEmpty else {
                    throw FieldError(field: "\(itemPath).name", message: "is missing", fix: "name one of the server's tools")
                }
                try at(itemPath) { () throws(FieldError) in try config.rejectUnknown(["name", "enabled", "permission_policy"]) }
                configs.append(
                    .object([
                        "name": .string(name),
                        "enabled": .bool(try JSONValue.bool(config["enabled"], path: "\(itemPath).enabled") ?? enabled),
                        "permission_policy": try policy(config["permission_policy"], path: "\(itemPath).permission_policy") ?? permission,
                    ]))
            }
            let resolved: JSONValue = .object([
                "type": "mcp_toolset", "mcp_server_name": .string(server),
                "default_config": .object(["enabled": .bool(enabled), "permission_policy": permission]), "configs": .array(configs),
            ])
            _ = try decoded(MCPToolsetConfig.self, resolved, path: path)
            return resolved
        case let other:
            throw FieldError(
                field: "\(path).type", message: "'\(other ?? "missing")' is not a tool type", fix: "use agent_toolset_20260401, custom or mcp_toolset"
            )
        }
    }

    /// Runs a check whose errors name fields of the object at `path`, and names them in full.
    static func at<T>(_ path: String, _ check: () throws(FieldError) -> T) throws(FieldError) -> T {
        do {
            return try check()
        } catch {
            throw FieldError(field: error.field.map { "\(path).\($0)" } ?? path, message: error.message, fix: error.fix, code: error.code)
        }
    }

    static func policy(_ value: JSONValue?, path: String) throws(FieldError) -> JSONValue? {
        switch value {
        case nil, .null?: return nil
        case .object(let fields)?:
            guard let type = fields["type"]?.stringValue, ["always_allow", "always_ask"].contains(type) else {
                throw FieldError(field: "\(path).type", message: "use always_allow or always_ask (auto is not built yet)", fix: nil)
            }
            return .object(["type": .string(type)])
        case let other?: throw FieldError(field: path, message: "must be an object, got \(other.kindName)", fix: nil)
        }
    }

    /// Checks an MCP entry by decoding it as the worker will, so that a file is refused when it
    /// is read rather than when a session first runs.
    static func decoded<T: Decodable>(_ type: T.Type, _ value: JSONValue, path: String) throws(FieldError) -> T {
        func under(_ codingPath: [any CodingKey]) -> String {
            let inner = WirePath.from(codingPath)
            return inner.isEmpty ? path : inner.hasPrefix("[") ? path + inner : "\(path).\(inner)"
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(value.compactJSON.utf8))
        } catch let DecodingError.dataCorrupted(context) {
            throw FieldError(field: under(context.codingPath), message: context.debugDescription, fix: nil)
        } catch let DecodingError.keyNotFound(key, context) {
            throw FieldError(field: under(context.codingPath + [key]), message: "is missing", fix: nil)
        } catch let DecodingError.typeMismatch(expected, context) {
            throw FieldError(field: under(context.codingPath), message: "must be \(expected)", fix: nil)
        } catch {
            throw FieldError(field: path, message: "\(error)", fix: nil)
        }
    }
}

extension AgentParams {
    /// What a session runs, decoded from its agent resource when the session is accepted. The
    /// session log stores it in this one form, whoever made the session, so a turn reads one
    /// shape; an agent that cannot run is refused here rather than at its first turn.
    public static func snapshot(ofSessionAgent resource: JSONValue) throws(FieldError) -> AgentSnapshot {
        try decoded(AgentSnapshot.self, resource, path: "agent")
    }

    /// An inline agent from a job or schedule file, checked as the API checks one, and the
    /// snapshot its sessions run.
    public static func fileAgent(_ params: JSONValue) throws(FieldError) -> AgentSnapshot {
        guard case .object(let fields) = params else {
            throw FieldError(
                field: nil, message: "must be an inline agent (a mapping) or the name of a stored agent",
                fix: "write agent: {model: claude-sonnet-4-5, system: ...}")
        }
        let resource = try creating(fields, origin: .file).resource(id: "agent_inline", now: "")
        do {
            return try AgentSnapshot(decoding: .object(resource))
        } catch {
            throw FieldError(field: nil, message: "cannot be read as an agent: \(error)", fix: nil)
        }
    }
}
