import Foundation

/// Where and how to reach a Redis server.
///
/// Accepted forms:
/// - `redis://[[username]:password@]host[:port][/db]`
/// - `unix:///path/to/redis.sock[?db=N&password=P&username=U]`
/// - `redis+cluster://[[username]:password@]host:port[,host:port...]`: a Redis Cluster, reached
///   through any of the listed nodes (seeds); the rest of its nodes are read from them.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): path
            }
        }
    }

    /// The server; for a cluster, its first seed.
    public var endpoint: Endpoint
    public var database: Int
    public var username: String?
    public var password: String?
    /// The nodes a cluster client starts from; empty for a single server.
    public var clusterSeeds: [Endpoint] = []

    public var isCluster: Bool { !clusterSeeds.isEmpty }

    public init(endpoint: Endpoint, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.endpoint = endpoint
        self.database = database
        self.username = username
        self.password = password
    }

    /// A cluster reached through `seeds` (at least one).
    public init(cluster seeds: [Endpoint], username: String? = nil, password: String? = nil) {
        self.init(endpoint: seeds[0], username: username, password: password)
        self.clusterSeeds = seeds
    }

    /// One node of this cluster, with the cluster's credentials.
    public func node(_ endpoint: Endpoint) -> RedisURL {
        RedisURL(endpoint: endpoint, database: 0, username: username, password: password)
    }

    /// The address with any password removed, for logs and error messages.
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        if isCluster {
            return "redis+cluster://\(auth)\(clusterSeeds.map(\.description).joined(separator: ","))"
        }
        switch endpoint {
        case .tcp:
            return "redis://\(auth)\(endpoint)/\(database)"
        case .unix(let path):
            return "unix://\(path)?db=\(database)" + (password == nil ? "" : "&password=***")
        }
    }

    public init(parsing text: String) throws(RedisError) {
        func invalid(_ reason: String) -> RedisError {
            .invalidURL(
                redacted: RedisURL.redact(text),
                reason: reason,
                fix:
                    "use redis://[:password@]host:port/db, unix:///path/to/redis.sock?db=N, or redis+cluster://[:password@]host:port,host:port for a Redis Cluster"
            )
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased().hasPrefix("redis+cluster://") {
            self = try Self.parseCluster(String(trimmed.dropFirst("redis+cluster://".count)), invalid: invalid)
            return
        }
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

    /// `[[user]:password@]host:port[,host:port...]`, after the scheme. Hand-parsed: URLComponents
    /// takes no list of hosts.
    private static func parseCluster(_ rest: String, invalid: (String) -> RedisError) throws(RedisError) -> RedisURL {
        var hosts = Substring(rest)
        var username: String?
        var password: String?
        if let at = hosts.lastIndex(of: "@") {
            let auth = hosts[..<at]
            hosts = hosts[hosts.index(after: at)...]
            if let colon = auth.firstIndex(of: ":") {
                username = auth[..<colon].isEmpty ? nil : String(auth[..<colon]).removingPercentEncoding
                password = String(auth[auth.index(after: colon)...]).removingPercentEncoding
            } else {
                password = String(auth).removingPercentEncoding
            }
        }
        if let query = hosts.firstIndex(of: "?") { hosts = hosts[..<query] }
        if let slash = hosts.firstIndex(of: "/") {
            let database = hosts[hosts.index(after: slash)...]
            guard database.isEmpty || database == "0" else {
                throw invalid("a Redis Cluster has only database 0, not '\(database)'")
            }
            hosts = hosts[..<slash]
        }
        var seeds: [Endpoint] = []
        for part in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            let host: Substring
            var portText: Substring = "6379"
            if part.hasPrefix("[") {
                guard let close = part.firstIndex(of: "]") else { throw invalid("'\(part)' opens [ for an IPv6 address and never closes it") }
                host = part[part.index(after: part.startIndex)..<close]
                let after = part[part.index(after: close)...]
                if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw invalid("'\(part)' is not host:port") }
            } else if let colon = part.lastIndex(of: ":") {
                host = part[..<colon]
                portText = part[part.index(after: colon)...]
            } else {
                host = part
            }
            guard !host.isEmpty else { throw invalid("a node's host is missing (in '\(part)')") }
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw invalid("the port '\(portText)' of \(host) is not a number from 1 to 65535")
            }
            seeds.append(.tcp(host: String(host), port: port))
        }
        return RedisURL(cluster: seeds, username: username, password: password)
    }

    static func redact(_ text: String) -> String {
        if text.lowercased().hasPrefix("redis+cluster://"), let at = text.lastIndex(of: "@") {
            let scheme = text.prefix("redis+cluster://".count)
            let auth = text[scheme.endIndex..<at]
            let user = auth.firstIndex(of: ":").map { auth[..<$0] } ?? ""
            return scheme + user + ":***" + text[at...]
        }
        guard var components = URLComponents(string: text) else { return "<unparseable URL>" }
        if components.password != nil { components.password = "***" }
        if let items = components.queryItems, items.contains(where: { $0.name == "password" }) {
            components.queryItems = items.map { $0.name == "password" ? URLQueryItem(name: "password", value: "***") : $0 }
        }
        return components.string ?? "<unparseable URL>"
    }
}
