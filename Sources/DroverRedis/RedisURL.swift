import Foundation

/// Where and how to reach a Redis server.
///
/// Accepted forms:
/// - `redis://[[username]:password@]host[:port][/db]`
/// - `unix:///path/to/redis.sock[?db=N&password=P&username=U]`
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    public var database: Int
    public var username: String?
    public var password: String?

    public init(endpoint: Endpoint, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.endpoint = endpoint
        self.database = database
        self.username = username
        self.password = password
    }

    /// The address with any password removed, for logs and error messages.
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "redis://\(auth)\(shownHost):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(path)?db=\(database)" + (password == nil ? "" : "&password=***")
        }
    }

    public init(parsing text: String) throws(RedisError) {
        func invalid(_ reason: String) -> RedisError {
            .invalidURL(
                redacted: RedisURL.redact(text),
                reason: reason,
                fix: "use redis://[:password@]host:port/db or unix:///path/to/redis.sock?db=N"
            )
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased() else {
            throw invalid("it is not a URL")
        }
        let query = components.queryItems ?? []
        func queryValue(_ name: String) -> String? { query.first { $0.name == name }?.value }

        var database = 0
        switch scheme {
        case "redis":
            guard let host = components.host, !host.isEmpty else { throw invalid("the host is missing") }
            let port = components.port ?? 6379
            guard (1...65535).contains(port) else { throw invalid("port \(port) is out of range 1-65535") }
            let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !path.isEmpty {
                guard let db = Int(path) else { throw invalid("the database '\(path)' is not a number") }
                database = db
            }
            let unbracketed = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
            self.endpoint = .tcp(host: unbracketed, port: port)
            self.username = components.user.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding }
            self.password = components.password?.removingPercentEncoding ?? queryValue("password")
        case "unix":
            let path = components.path
            guard path.hasPrefix("/") else { throw invalid("a unix socket URL needs an absolute path, as in unix:///run/redis.sock") }
            self.endpoint = .unix(path: path)
            self.username = queryValue("username")
            self.password = queryValue("password")
        case "rediss":
            throw invalid("TLS (rediss://) is not supported yet; reach the server over loopback, a unix socket or a TLS tunnel")
        default:
            throw invalid("unknown scheme '\(scheme)'")
        }
        if let raw = queryValue("db") {
            guard let db = Int(raw) else { throw invalid("the database '\(raw)' is not a number") }
            database = db
        }
        guard (0...15_999).contains(database) else { throw invalid("database \(database) is out of range") }
        self.database = database
    }

    static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return "<unparseable URL>" }
        if components.password != nil { components.password = "***" }
        if let items = components.queryItems, items.contains(where: { $0.name == "password" }) {
            components.queryItems = items.map { $0.name == "password" ? URLQueryItem(name: "password", value: "***") : $0 }
        }
        return components.string ?? "<unparseable URL>"
    }
}
