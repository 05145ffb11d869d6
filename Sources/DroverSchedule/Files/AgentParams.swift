import DroverBrain
import DroverCore

/// An agent written inline in the SDK's agent create-params shape (`model`, `name`, `system`,
/// `tools`, ...), and the snapshot a session created from it runs.
enum AgentParams {
    static let knownFields = ["name", "model", "system", "description", "tools", "metadata", "mcp_servers", "skills"]

    static func snapshot(_ node: YAMLNode) throws(ScheduleFileError) -> AgentSnapshot {
        try node.onlyKeys(knownFields)
        let modelNode = try node.required("model", fix: "set the model, e.g. model: claude-sonnet-4-5")
        let model: String
        if modelNode.node.mapping != nil {
            model = try modelNode.required("id", fix: "write model: {id: claude-sonnet-4-5}").string(fix: "write the model id as a string")
        } else {
            model = try modelNode.string(fix: "write the model id as a string, e.g. claude-sonnet-4-5")
        }
        var snapshot = AgentSnapshot(model: model)
        snapshot.system = try node.child("system")?.string(fix: "write the system prompt as a string (use | for several lines)")
        for key in ["mcp_servers", "skills"] {
            if let value = node.child(key), !(value.node.sequence?.isEmpty ?? false) {
                throw value.error("is not built yet in Drover", fix: "remove \(key); MCP servers and skills are not built yet")
            }
        }
        guard let tools = node.child("tools") else {
            // As in the SDK: an agent without tools has none.
            snapshot.toolset.defaultConfig.enabled = false
            return snapshot
        }
        var hasToolset = false
        for tool in try tools.items(fix: "list tools, e.g. - type: agent_toolset_20260401") {
            let type = try tool.required("type", fix: "set type to agent_toolset_20260401 or custom").string(fix: "write the type as a string")
            switch type {
            case "agent_toolset_20260401":
                try tool.onlyKeys(["type", "default_config", "configs"])
                hasToolset = true
                if let defaults = tool.child("default_config") {
                    try defaults.onlyKeys(["enabled", "permission_policy"])
                    if let enabled = defaults.child("enabled") { snapshot.toolset.defaultConfig.enabled = try bool(enabled) }
                    if let policy = defaults.child("permission_policy") {
                        snapshot.toolset.defaultConfig.permissionPolicy = try self.policy(policy)
                    }
                }
                if let configs = tool.child("configs") {
                    for config in try configs.items(fix: "list per-tool configs, e.g. - {name: bash, enabled: false}") {
                        try config.onlyKeys(["name", "enabled", "permission_policy"])
                        let name = try config.required("name", fix: "name the tool: bash, read, write, edit, glob or grep").string(fix: "write the tool name as a string")
                        snapshot.toolset.configs.append(.init(
                            name: name,
                            enabled: try config.child("enabled").map { node throws(ScheduleFileError) in try bool(node) },
                            permissionPolicy: try config.child("permission_policy").map { node throws(ScheduleFileError) in try policy(node) }))
                    }
                }
            case "custom":
                try tool.onlyKeys(["type", "name", "description", "input_schema"])
                snapshot.customTools.append(.init(
                    name: try tool.required("name", fix: "name the custom tool").string(fix: "write the name as a string"),
                    description: try tool.required("description", fix: "describe what the tool does").string(fix: "write the description as a string"),
                    inputSchema: try tool.required("input_schema", fix: "give a JSON schema, e.g. {type: object, properties: {}}").json()))
            case "mcp_toolset":
                throw tool.error("MCP toolsets are not built yet in Drover", fix: "remove this tool")
            default:
                throw tool.error("'\(type)' is not a tool type", fix: "use agent_toolset_20260401 or custom")
            }
        }
        if !hasToolset { snapshot.toolset.defaultConfig.enabled = false }
        return snapshot
    }

    private static func bool(_ node: YAMLNode) throws(ScheduleFileError) -> Bool {
        guard let value = node.node.bool else { throw node.error("must be true or false", fix: "write true or false") }
        return value
    }

    private static func policy(_ node: YAMLNode) throws(ScheduleFileError) -> AgentSnapshot.ToolsetConfig.Policy {
        let type = try node.required("type", fix: "write permission_policy: {type: always_allow}").string(fix: "write always_allow or always_ask")
        guard ["always_allow", "always_ask"].contains(type) else {
            throw node.error("'\(type)' is not a permission policy", fix: "use always_allow or always_ask")
        }
        return .init(type: type)
    }
}
