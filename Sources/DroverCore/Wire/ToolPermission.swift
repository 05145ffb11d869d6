/// `evaluated_permission` of `agent.tool_use` and `agent.mcp_tool_use`.
public enum EvaluatedPermission: String, Sendable, Hashable, CaseIterable {
    case allow, ask, deny
}

/// Which permission policy produced the evaluated permission (`evaluation`).
public enum ToolEvaluation: WireCodable {
    case alwaysAllow
    case alwaysAsk
    case auto(AutoEvaluatedPermission)
    case other([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a tool evaluation object")
        switch try reader.required("type", .string) {
        case "always_allow": self = .alwaysAllow
        case "always_ask": self = .alwaysAsk
        case "auto": self = .auto(try reader.required("evaluated_permission", .wire(AutoEvaluatedPermission.self, "an evaluated permission object")))
        default: self = .other(reader.object)
        }
        if !reader.extras.isEmpty { self = .other(reader.object) }
    }

    public var wireValue: JSONValue {
        switch self {
        case .alwaysAllow: .object(["type": .string("always_allow")])
        case .alwaysAsk: .object(["type": .string("always_ask")])
        case .auto(let permission): .object(["type": .string("auto"), "evaluated_permission": permission.wireValue])
        case .other(let object): .object(object)
        }
    }
}

/// The server's own judgement under the `auto` policy. `reason_code` is an open set.
public enum AutoEvaluatedPermission: WireCodable {
    case allow
    case ask(reasonCode: String)
    case deny(reasonCode: String)
    case other([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "an evaluated permission object")
        switch try reader.required("type", .string) {
        case "allow": self = .allow
        case "ask": self = .ask(reasonCode: try reader.required("reason_code", .string))
        case "deny": self = .deny(reasonCode: try reader.required("reason_code", .string))
        default: self = .other(reader.object)
        }
        if !reader.extras.isEmpty { self = .other(reader.object) }
    }

    public var wireValue: JSONValue {
        switch self {
        case .allow: .object(["type": .string("allow")])
        case .ask(let reasonCode): .object(["type": .string("ask"), "reason_code": .string(reasonCode)])
        case .deny(let reasonCode): .object(["type": .string("deny"), "reason_code": .string(reasonCode)])
        case .other(let object): .object(object)
        }
    }
}
