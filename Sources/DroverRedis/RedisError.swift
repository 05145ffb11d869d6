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
    /// A script or multi-key command whose keys hash to different Redis Cluster slots. Refused on
    /// a single server too, so that a key layout that cannot run on a cluster fails in every test.
    case crossSlot(command: String, keys: [String])
    /// A `redis+cluster://` URL whose nodes are not a cluster: none answers, or one answers
    /// with cluster support disabled.
    case clusterUnavailable(endpoint: String, reason: String)

    static func server(_ message: String) -> RedisError {
        let code = message.prefix { $0 != " " }
        return .serverError(code: String(code), message: message)
    }

    public var field: String? {
        switch self {
        case .invalidURL, .authenticationFailed, .clusterUnavailable: "DROVER_REDIS_URL"
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
        case .crossSlot:
            "give every key of one script or command the same hash tag ({...}), so that they share a slot"
        case .clusterUnavailable:
            "list nodes of a running cluster whose 16384 slots are all served (redis-cli --cluster check HOST:PORT), or use redis://host:port for a single server"
        default: nil
        }
    }

    /// True for failures that a reconnect may cure.
    var isTransient: Bool {
        switch self {
        case .connectionFailed, .connectionLost: true
        case .serverError(let code, _):
            code == "LOADING" || code == "BUSY" || code == "MASTERDOWN" || code == "TRYAGAIN" || code == "CLUSTERDOWN"
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
        case .crossSlot(let command, let keys):
            "\(command) would touch keys in different Redis Cluster slots (\(keys.prefix(4).joined(separator: ", "))\(keys.count > 4 ? ", ..." : "")). Fix: \(fix!)"
        case .clusterUnavailable(let endpoint, let reason):
            "the Redis Cluster at \(endpoint) cannot serve: \(reason). Fix: \(fix!)"
        }
    }
}
