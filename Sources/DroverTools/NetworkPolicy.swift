import DroverCore

/// Where an environment's sandboxes may connect: the SDK's `networking` (`BetaUnrestrictedNetwork`
/// or `BetaLimitedNetwork`), checked. The sandbox itself has no network; the worker's egress
/// proxy enforces this policy on every connection it makes for the sandbox.
public struct NetworkPolicy: Sendable, Hashable {
    public enum Access: String, Sendable, Hashable {
        /// Any public host. Loopback, private and link-local addresses stay refused.
        case unrestricted
        /// Only `allowedHosts`, and the registries or MCP servers the flags add.
        case limited
    }

    public var access: Access
    /// As given, lower-cased, without a trailing dot: exact names, `*.` wildcards, IPv4 literals.
    public var allowedHosts: [HostPattern]
    public var allowPackageManagers: Bool
    public var allowMCPServers: Bool

    public init(access: Access, allowedHosts: [HostPattern] = [], allowPackageManagers: Bool = false, allowMCPServers: Bool = false) {
        self.access = access
        self.allowedHosts = allowedHosts
        self.allowPackageManagers = allowPackageManagers
        self.allowMCPServers = allowMCPServers
    }

    /// Drover's default, and `limited` with nothing allowed: the sandbox gets no proxy at all.
    public static let offline = NetworkPolicy(access: .limited)

    public var isOffline: Bool {
        access == .limited && allowedHosts.isEmpty && !allowPackageManagers && !allowMCPServers
    }

    /// Public package registries `allow_package_managers` opens, by the managers' default
    /// configuration.
    public static let packageRegistries: [HostPattern] = [
        "pypi.org", "files.pythonhosted.org",
        "registry.npmjs.org", "registry.yarnpkg.com",
        "crates.io", "index.crates.io", "static.crates.io",
        "rubygems.org", "index.rubygems.org",
        "proxy.golang.org", "sum.golang.org",
        "deb.debian.org", "security.debian.org", "archive.ubuntu.com", "security.ubuntu.com",
        "repo.maven.apache.org", "repo1.maven.org",
        "conda.anaconda.org", "repo.anaconda.com",
    ]

    /// The entry that names `host` (a name or an IPv4 literal, as the request gave it), if one
    /// does; `mcpHosts` are the session's agent's MCP servers. `explicit` when it names it exactly
    /// (a private address is then allowed), not through a wildcard or a registry list. Addresses
    /// are checked after resolution, by the proxy.
    public func match(host: String, mcpHosts: [String] = []) -> (pattern: HostPattern, explicit: Bool)? {
        let name = HostPattern.normalize(host)
        if let exact = allowedHosts.first(where: { !$0.isWildcard && $0.text == name }) { return (exact, true) }
        if let wildcard = allowedHosts.first(where: { $0.matches(name) }) { return (wildcard, false) }
        if allowPackageManagers, let registry = Self.packageRegistries.first(where: { $0.matches(name) }) { return (registry, false) }
        if allowMCPServers, let server = mcpHosts.map({ HostPattern(checked: HostPattern.normalize($0)) }).first(where: { $0.matches(name) }) {
            return (server, false)
        }
        return nil
    }

    /// Parses the SDK's `networking` object. Nil or null is Drover's default, offline.
    public static func parse(_ value: JSONValue?) throws(EnvironmentConfig.Invalid) -> NetworkPolicy {
        guard let value, value != .null else { return .offline }
        guard let fields = value.objectValue, let type = fields["type"]?.stringValue else {
            throw EnvironmentConfig.Invalid(
                field: "config.networking", message: "must be {\"type\":\"unrestricted\"} or {\"type\":\"limited\",\"allowed_hosts\":[...]}")
        }
        switch type {
        case "unrestricted":
            return NetworkPolicy(access: .unrestricted)
        case "limited":
            var hosts: [HostPattern] = []
            switch fields["allowed_hosts"] {
            case nil, .null?: break
            case .array(let items)?:
                for (index, item) in items.enumerated() {
                    let field = "config.networking.allowed_hosts[\(index)]"
                    guard let text = item.stringValue else { throw EnvironmentConfig.Invalid(field: field, message: "must be a string") }
                    do {
                        hosts.append(try HostPattern(text))
                    } catch {
                        throw EnvironmentConfig.Invalid(field: field, message: error.message)
                    }
                }
            case .some:
                throw EnvironmentConfig.Invalid(field: "config.networking.allowed_hosts", message: "must be a list of host names")
            }
            func flag(_ name: String) throws(EnvironmentConfig.Invalid) -> Bool {
                switch fields[name] {
                case nil, .null?: return false
                case .bool(let value)?: return value
                case .some: throw EnvironmentConfig.Invalid(field: "config.networking.\(name)", message: "must be true or false")
                }
            }
            var unique: [HostPattern] = []
            for host in hosts where !unique.contains(host) { unique.append(host) }
            return NetworkPolicy(
                access: .limited, allowedHosts: unique.sorted { $0.text < $1.text },
                allowPackageManagers: try flag("allow_package_managers"), allowMCPServers: try flag("allow_mcp_servers"))
        default:
            throw EnvironmentConfig.Invalid(field: "config.networking.type", message: "must be \"unrestricted\" or \"limited\", not \"\(type)\"")
        }
    }

    /// A stable text for cache keys: sandboxes are pooled per policy.
    var canonical: String {
        "\(access.rawValue):\(allowedHosts.map(\.text).joined(separator: ",")):\(allowPackageManagers):\(allowMCPServers)"
    }
}

/// One `allowed_hosts` entry: a host name (`api.example.com`), a wildcard for its subdomains
/// (`*.example.com`, which does not match `example.com` itself), or an IPv4 literal.
public struct HostPattern: Sendable, Hashable, CustomStringConvertible {
    /// Lower-cased, without a trailing dot.
    public let text: String

    public var isWildcard: Bool { text.hasPrefix("*.") }
    public var description: String { text }

    public struct Invalid: Error {
        public let message: String
    }

    public init(_ raw: String) throws(Invalid) {
        let text = Self.normalize(raw)
        if let problem = Self.problem(with: text) {
            throw Invalid(
                message:
                    "'\(raw.prefix(100))' \(problem). Fix: give a host name such as \"api.example.com\", a wildcard such as \"*.example.com\", or an IPv4 address such as \"203.0.113.7\"; no scheme, port or path"
            )
        }
        self.text = text
    }

    init(checked text: String) {
        self.text = text
    }

    public static func normalize(_ host: String) -> String {
        var text = host.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    public func matches(_ host: String) -> Bool {
        let name = Self.normalize(host)
        guard isWildcard else { return name == text }
        let suffix = text.dropFirst(1)  // ".example.com"
        return name.count > suffix.count && name.hasSuffix(suffix)
    }

    /// What is wrong with `text` as an entry, or nil when it is a host name, wildcard or IPv4 literal.
    public static func problem(with text: String) -> String? {
        if text.isEmpty { return "is empty" }
        if text.utf8.count > 253 { return "is longer than 253 characters" }
        if text.contains("://") || text.contains("/") { return "is a URL, not a host" }
        if text.contains(":") {
            return text.contains("[") || text.filter({ $0 == ":" }).count > 1 ? "is an IPv6 address, which is not supported" : "has a port"
        }
        let name = text.hasPrefix("*.") ? String(text.dropFirst(2)) : text
        if text.dropFirst(text.hasPrefix("*.") ? 2 : 0).contains("*") { return "has a wildcard other than a leading \"*.\"" }
        if name.isEmpty { return "is a wildcard with no domain" }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if text.hasPrefix("*.") && labels.count < 2 { return "is a wildcard over a whole top-level domain" }
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63 else { return "has an empty or over-long label" }
            guard label.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }),
                label.first != "-", label.last != "-"
            else { return "is not a host name (letters, digits, hyphens and dots only)" }
        }
        return nil
    }
}

extension HostPattern: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self.init(checked: Self.normalize(value))
    }
}
