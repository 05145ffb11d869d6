import DroverCore

/// An agent's `multiagent` as a create or update body sends it (the SDK's
/// `BetaManagedAgentsMultiagentParams`), checked for shape. Which agents the roster names, at
/// which versions, needs the agent store: the API resolves `entries` (`MultiagentResolution`)
/// and writes the SDK's resolved form (`resolved(_:)`).
public struct MultiagentParams: Sendable, Equatable {
    /// A roster entry before it is resolved.
    public enum Entry: Sendable, Equatable, Hashable {
        /// A saved agent; nil version: its latest when the coordinator is saved.
        case agent(id: String, version: Int?)
        /// The agent that owns this configuration.
        case current
    }

    public enum Kind: String, Sendable {
        case coordinator
        case multiagent20261001 = "multiagent_20261001"
    }

    public let kind: Kind
    /// `coordinator.agents`, or `subagents.predefined_agents`.
    public let entries: [Entry]
    /// Whether the model may define an agent when it spawns a thread (multiagent_20261001 only).
    public let inlineAgents: Bool
    /// False only for a multiagent_20261001 whose `subagents` is disabled.
    public let subagents: Bool

    public static let maximumEntries = 20

    /// Reads `value`, merged over `stored` as an update merges a `multiagent_20261001` (a key
    /// omitted keeps its stored value; null takes the default; `predefined_agents` sent
    /// replaces the stored list). Errors name the field under `multiagent`.
    public static func parse(_ value: JSONValue, stored: JSONValue? = nil) throws(FieldError) -> MultiagentParams {
        guard case .object(var fields) = value else {
            throw FieldError(
                field: "multiagent", message: "must be an object, got \(value.kindName)", fix: "send {\"type\": \"multiagent_20261001\"}")
        }
        switch fields["type"]?.stringValue {
        case "coordinator":
            try AgentParams.at("multiagent") { () throws(FieldError) in try fields.rejectUnknown(["type", "agents"]) }
            guard let agents = fields["agents"]?.arrayValue, (1...maximumEntries).contains(agents.count) else {
                throw FieldError(
                    field: "multiagent.agents", message: "must list 1 to \(maximumEntries) agents",
                    fix: "name agent ids, {\"type\": \"agent\", \"id\": ..., \"version\": ...} or {\"type\": \"self\"}")
            }
            let entries = try agents.enumerated().map { (index, item) throws(FieldError) in try entry(item, path: "multiagent.agents[\(index)]") }
            try checkDistinct(entries, path: "multiagent.agents")
            return MultiagentParams(kind: .coordinator, entries: entries, inlineAgents: false, subagents: true)
        case "multiagent_20261001":
            if case .object(let old)? = stored, old["type"]?.stringValue == "multiagent_20261001" {
                fields = merged(fields, over: old)
            }
            try AgentParams.at("multiagent") { () throws(FieldError) in try fields.rejectUnknown(["type", "subagents", "workflows", "advisor"]) }
            if try enabled(fields["advisor"], path: "multiagent.advisor", default: false, known: ["type", "model"]) {
                throw FieldError(
                    field: "multiagent.advisor", message: "an advisor model is not built yet in Drover",
                    fix: "send \"advisor\": {\"type\": \"disabled\"} or leave it out")
            }
            if try enabled(fields["workflows"], path: "multiagent.workflows", default: true, known: ["type", "inline_agents", "predefined_agents"]) {
                throw FieldError(
                    field: "multiagent.workflows", message: "workflow runs are not built yet in Drover (the SDK's default is enabled)",
                    fix: "send \"workflows\": {\"type\": \"disabled\"}")
            }
            let path = "multiagent.subagents"
            guard try enabled(fields["subagents"], path: path, default: true, known: ["type", "inline_agents", "predefined_agents"]) else {
                return MultiagentParams(kind: .multiagent20261001, entries: [], inlineAgents: false, subagents: false)
            }
            let subagents = fields["subagents"]?.objectValue ?? [:]
            let inline = try enabled(subagents["inline_agents"], path: "\(path).inline_agents", default: true, known: ["type"])
            let listed = subagents["predefined_agents"]?.arrayValue ?? []
            if let raw = subagents["predefined_agents"], raw != .null, raw.arrayValue == nil {
                throw FieldError(field: "\(path).predefined_agents", message: "must be a list, got \(raw.kindName)", fix: nil)
            }
            guard listed.count <= maximumEntries else {
                throw FieldError(
                    field: "\(path).predefined_agents", message: "at most \(maximumEntries) agents, not \(listed.count)", fix: "name fewer")
            }
            let entries = try listed.enumerated().map { (index, item) throws(FieldError) in
                try entry(item, path: "\(path).predefined_agents[\(index)]")
            }
            try checkDistinct(entries, path: "\(path).predefined_agents")
            if !inline, entries.isEmpty {
                throw FieldError(
                    field: "\(path).predefined_agents", message: "names no agent, and inline agents are disabled, so no thread could start",
                    fix: "name at least one agent, or enable inline_agents")
            }
            return MultiagentParams(kind: .multiagent20261001, entries: entries, inlineAgents: inline, subagents: true)
        case let other:
            throw FieldError(
                field: "multiagent.type", message: "'\(other ?? "missing")' is not a multiagent type", fix: "use multiagent_20261001 or coordinator")
        }
    }

    /// The SDK's resolved form (`BetaManagedAgentsMultiagent`), with each entry's reference.
    public func resolved(_ references: [(id: String, version: Int)]) -> JSONValue {
        let agents = JSONValue.array(references.map { .object(["type": "agent", "id": .string($0.id), "version": .number(Double($0.version))]) })
        switch kind {
        case .coordinator:
            return .object(["type": "coordinator", "agents": agents])
        case .multiagent20261001:
            let subagents: JSONValue =
                self.subagents
                ? .object(["type": "enabled", "inline_agents": .object(["type": inlineAgents ? "enabled" : "disabled"]), "predefined_agents": agents])
                : .object(["type": "disabled"])
            return .object([
                "type": "multiagent_20261001", "subagents": subagents, "workflows": .object(["type": "disabled"]),
                "advisor": .object(["type": "disabled"]),
            ])
        }
    }

    static func entry(_ value: JSONValue, path: String) throws(FieldError) -> Entry {
        switch value {
        case .string(let id) where !id.isEmpty:
            return .agent(id: id, version: nil)
        case .object(let fields):
            switch fields["type"]?.stringValue {
            case "self":
                try AgentParams.at(path) { () throws(FieldError) in try fields.rejectUnknown(["type"]) }
                return .current
            case "agent":
                try AgentParams.at(path) { () throws(FieldError) in try fields.rejectUnknown(["type", "id", "version"]) }
                guard let id = fields["id"]?.stringValue, !id.isEmpty else {
                    throw FieldError(field: "\(path).id", message: "is missing", fix: "give the agent's id")
                }
                var version: Int?
                if let raw = fields["version"], raw != .null {
                    guard let number = raw.intValue, (1...Int(Int32.max)).contains(number) else {
                        throw FieldError(field: "\(path).version", message: "must be a whole number from 1", fix: "leave it out for the latest")
                    }
                    version = number
                }
                return .agent(id: id, version: version)
            case "advisor":
                throw FieldError(
                    field: "\(path).type", message: "an advisor in the roster is not built yet in Drover", fix: "name saved agents or self")
            case let other:
                throw FieldError(field: "\(path).type", message: "'\(other ?? "missing")' is not a roster entry", fix: "use agent or self")
            }
        default:
            throw FieldError(field: path, message: "must be an agent id, an {\"type\": \"agent\"} reference or {\"type\": \"self\"}", fix: nil)
        }
    }

    /// At most one `self`, and no agent twice (by id: two versions of one agent are one agent).
    static func checkDistinct(_ entries: [Entry], path: String) throws(FieldError) {
        var seen = Set<String>()
        for (index, entry) in entries.enumerated() {
            let key: String
            switch entry {
            case .agent(let id, _): key = id
            case .current: key = "self"
            }
            guard seen.insert(key).inserted else {
                throw FieldError(
                    field: "\(path)[\(index)]", message: "names \(key) again; roster entries must be distinct", fix: "name each agent once")
            }
        }
    }

    /// Whether an `{type: enabled|disabled}` member is enabled; absent or null is `default`.
    static func enabled(_ value: JSONValue?, path: String, default: Bool, known: Set<String>) throws(FieldError) -> Bool {
        switch value {
        case nil, .null?:
            return `default`
        case .object(let fields)?:
            try AgentParams.at(path) { () throws(FieldError) in try fields.rejectUnknown(known) }
            switch fields["type"]?.stringValue {
            case "enabled": return true
            case "disabled": return false
            case let other: throw FieldError(field: "\(path).type", message: "'\(other ?? "missing")' is not enabled or disabled", fix: nil)
            }
        case let other?:
            throw FieldError(
                field: path, message: "must be an object, got \(other.kindName)", fix: "send {\"type\": \"enabled\"} or {\"type\": \"disabled\"}")
        }
    }

    /// An update over the stored configuration, level by level.
    static func merged(_ update: [String: JSONValue], over stored: [String: JSONValue]) -> [String: JSONValue] {
        var result = stored
        for (key, value) in update {
            guard case .object(let new) = value, case .object(let old)? = stored[key], new["type"] == old["type"] else {
                result[key] = value
                continue
            }
            var inner = old
            for (innerKey, innerValue) in new { inner[innerKey] = innerValue }
            result[key] = .object(inner)
        }
        return result.filter { $0.value != .null }
    }
}
