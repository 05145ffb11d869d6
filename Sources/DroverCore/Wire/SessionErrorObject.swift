/// The `error` of a `session.error` event: its type and message typed, the rest (such as
/// `mcp_server_name`, `repository_url`, `vault_id`) kept as JSON in `details`.
public struct SessionErrorObject: WireCodable {
    public var type: SessionErrorType
    public var message: String
    public var retryStatus: RetryStatus?
    public var details: [String: JSONValue]

    public init(type: SessionErrorType, message: String, retryStatus: RetryStatus? = nil, details: [String: JSONValue] = [:]) {
        self.type = type
        self.message = message
        self.retryStatus = retryStatus
        self.details = details
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "an error object")
        type = SessionErrorType(rawValue: try reader.required("type", .string))
        message = try reader.required("message", .string)
        // Read directly rather than as optional so a `null` stays in `details` as it came.
        if let status = reader.object["retry_status"], status != .null {
            retryStatus = try reader.required("retry_status", .wire(RetryStatus.self, "a retry status object"))
        }
        details = reader.remaining()
    }

    public var wireValue: JSONValue {
        var writer = WireWriter()
        writer.merge(details)
        writer.set("type", type.rawValue)
        writer.set("message", message)
        writer.set("retry_status", retryStatus)
        return writer.value
    }
}

/// The `type` of a session error; an open set, so unknown strings are kept.
public struct SessionErrorType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let unknownError = Self(rawValue: "unknown_error")
    public static let modelOverloadedError = Self(rawValue: "model_overloaded_error")
    public static let modelRateLimitedError = Self(rawValue: "model_rate_limited_error")
    public static let modelRequestFailedError = Self(rawValue: "model_request_failed_error")
    public static let mcpConnectionFailedError = Self(rawValue: "mcp_connection_failed_error")
    public static let mcpAuthenticationFailedError = Self(rawValue: "mcp_authentication_failed_error")
    public static let billingError = Self(rawValue: "billing_error")
    public static let credentialHostUnreachableError = Self(rawValue: "credential_host_unreachable_error")
    public static let toolUseLimitReachedError = Self(rawValue: "tool_use_limit_reached_error")
    public static let compactionLimitReachedError = Self(rawValue: "compaction_limit_reached_error")
    public static let repositoryAuthenticationError = Self(rawValue: "repository_authentication_error")
    public static let repositoryForbiddenError = Self(rawValue: "repository_forbidden_error")
    public static let repositoryNotFoundError = Self(rawValue: "repository_not_found_error")
    public static let repositoryCheckoutError = Self(rawValue: "repository_checkout_error")
    public static let repositoryCloneError = Self(rawValue: "repository_clone_error")
}

/// What the client should do after an error.
public enum RetryStatus: WireCodable {
    /// The server retries by itself; wait.
    case retrying
    /// The turn is over; the session goes idle and takes a new prompt.
    case exhausted
    /// The session will terminate.
    case terminal
    case other([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a retry status object")
        switch try reader.required("type", .string) {
        case "retrying": self = .retrying
        case "exhausted": self = .exhausted
        case "terminal": self = .terminal
        default: self = .other(reader.object)
        }
        if !reader.extras.isEmpty { self = .other(reader.object) }
    }

    public var wireValue: JSONValue {
        switch self {
        case .retrying: .object(["type": .string("retrying")])
        case .exhausted: .object(["type": .string("exhausted")])
        case .terminal: .object(["type": .string("terminal")])
        case .other(let object): .object(object)
        }
    }
}
