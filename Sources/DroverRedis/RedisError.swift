import DroverCore

public enum RedisError: ActionableError, Equatable {
    /// The URL cannot be parsed or uses something unsupported.
    case invalidURL(redacted: String, reason: String, fix: String)
    /// No connection could be made within the connect timeout or the reconnect window.
    case connectionFailed(endpoint: String, reason: String)
    /// The connection broke while a command was in flight. The command may or may not have run.
    case connectionLost(endpoint: String, reason: String)
    /// The server refused the credentials, or wants some.
    case authenticationFailed(endpoint: String, reply: String)
    /// An error reply, such as `ERR`, `WRONGTYPE` or `NOSCRIPT`.
    case serverError(code: String, message: String)
    /// A reply that was not the shape the caller expects.
    case unexpectedReply(String)
    /// The client was closed.
    case closed
    /// The awaiting task was cancelled before the reply came; the command may or may not have run.
    case cancelled

    static func server(_ message: String) -> RedisError {
        let code = message.prefix { $0 != " " }
        return .serverError(code: String(code), message: message)
    }

    public var field: String? {
        switch self {
        case .invalidURL, .authenticationFailed: "DROVER_REDIS_URL"
        default: nil
        }
    }

    public var fix: String? {
        switch self {
        case .invalidURL(_, _, let fix): fix
        case .connectionFailed:
            "check that redis-server is running and reachable, or unset DROVER_REDIS_URL to use Drover's embedded server"
        case .authenticationFailed:
            "put the right password in DROVER_REDIS_URL, as redis://:PASSWORD@host:port/db"
        default: nil
        }
    }

    /// True for failures that a reconnect may cure.
    var isTransient: Bool {
        switch self {
        case .connectionFailed, .connectionLost: true
        case .serverError(let code, _): code == "LOADING" || code == "BUSY" || code == "MASTERDOWN" || code == "TRYAGAIN"
        default: false
        }
    }

    public var description: String {
        switch self {
        case .invalidURL(let url, let reason, let fix):
            "invalid Redis URL '\(url)': \(reason). Fix: \(fix)"
        case .connectionFailed(let endpoint, let reason):
            "cannot connect to Redis at \(endpoint): \(reason). Fix: \(fix!)"
        case .connectionLost(let endpoint, let reason):
            "lost the connection to Redis at \(endpoint) while a command was in flight: \(reason)"
        case .authenticationFailed(let endpoint, let reply):
            "Redis at \(endpoint) refused authentication (\(reply)). Fix: \(fix!)"
        case .serverError(_, let message):
            "Redis error: \(message)"
        case .unexpectedReply(let text):
            "unexpected reply from Redis: \(text)"
        case .closed:
            "the Redis client is closed"
        case .cancelled:
            "the Redis command was cancelled before its reply came"
        }
    }
}
