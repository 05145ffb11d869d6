import DroverTools
import Foundation
import NIOCore
import NIOPosix

/// Resolves host names for the proxy. The sandbox never resolves anything: it has no DNS.
public protocol EgressResolver: Sendable {
    func resolve(host: String, port: Int) async throws -> [SocketAddress]
}

/// The system's resolver (getaddrinfo, so /etc/hosts and nsswitch apply), off the event loop.
public struct SystemResolver: EgressResolver {
    public init() {}

    public func resolve(host: String, port: Int) async throws -> [SocketAddress] {
        try await NIOThreadPool.singleton.runIfActive { try Self.lookup(host: host, port: port) }
    }

    /// The IPv4 and IPv6 addresses getaddrinfo gives for `host`, blocking.
    static func lookup(host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else { throw ResolveFailed(host: host, reason: String(cString: gai_strerror(status))) }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            if let address = info.pointee.ai_addr {
                switch info.pointee.ai_family {
                case AF_INET: addresses.append(address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: host) })
                case AF_INET6:
                    addresses.append(address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: host) })
                default: break
                }
            }
            next = info.pointee.ai_next
        }
        return addresses
    }

    public struct ResolveFailed: Error, CustomStringConvertible {
        public let host: String
        public let reason: String
        public var description: String { "\(host) did not resolve: \(reason)" }
    }
}

/// Why the proxy refused a connection, in words the agent (and the person reading its session)
/// can act on: the host, and the environment field that would let it through.
public enum EgressRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// `limited` networking, and no entry names the host.
    case hostNotAllowed(host: String)
    /// The host resolved only to addresses that lead back into the host or its network.
    case nonPublicAddress(host: String, address: String, kind: IPAddressClass)
    /// One of Drover's own endpoints (its API, its Redis): never reachable, whatever the policy.
    case protectedEndpoint(host: String, address: String)
    case unresolvable(host: String, reason: String)
    case malformed(reason: String)
    /// A host that only a session's repository opens, asked for something else.
    case repositoryOnly(host: String, path: String)
    case tooManyConnections(limit: Int)

    /// A refusal that the policy made (the host is not listed, or not public): one a repository
    /// of the session's may overrule. Drover's own endpoints never are.
    var isPolicyRefusal: Bool {
        switch self {
        case .hostNotAllowed, .nonPublicAddress: true
        default: false
        }
    }

    /// Why, in words for an MCP server's URL (no environment field to change there).
    public var reasonForMCP: String {
        switch self {
        case .hostNotAllowed(let host): "\(host) is not allowed"
        case .nonPublicAddress(let host, let address, let kind): "\(host) is \(address), a \(kind.rawValue) address; MCP servers must be public"
        case .protectedEndpoint(let host, let address): "\(host) is \(address), one of Drover's own endpoints"
        case .unresolvable(let host, let reason): "\(host) did not resolve (\(reason))"
        case .malformed(let reason): reason
        case .repositoryOnly(let host, _): "\(host) is open for its repository's git requests only"
        case .tooManyConnections(let limit): "more than \(limit) connections"
        }
    }

    public var verdict: String {
        switch self {
        case .hostNotAllowed: "refused: host not allowed"
        case .nonPublicAddress: "refused: non-public address"
        case .protectedEndpoint: "refused: Drover endpoint"
        case .unresolvable: "refused: did not resolve"
        case .malformed: "refused: malformed request"
        case .repositoryOnly: "refused: not the repository's"
        case .tooManyConnections: "refused: too many connections"
        }
    }

    /// 403 for what the policy forbids; 502 when the name does not resolve; 400 for a request
    /// that is not a proxy request; 429 past the connection cap.
    public var status: Int {
        switch self {
        case .hostNotAllowed, .nonPublicAddress, .protectedEndpoint, .repositoryOnly: 403
        case .unresolvable: 502
        case .malformed: 400
        case .tooManyConnections: 429
        }
    }

    public var description: String {
        switch self {
        case .hostNotAllowed(let host):
            "Drover's egress proxy refused \(host): this session's environment does not allow it. Fix: add \"\(host)\"\(Self.wildcardHint(for: host)) to the environment's config.networking.allowed_hosts, or set config.networking.type to \"unrestricted\""
        case .nonPublicAddress(let host, let address, let kind):
            "Drover's egress proxy refused \(host): it resolves to \(address), \(kind == .thisHost ? "one of this host's own addresses" : "a \(kind.rawValue) address"), and only public addresses are reachable. Fix: if this host is meant to be reached, list \"\(host)\" exactly in the environment's config.networking.allowed_hosts (with type \"limited\")"
        case .protectedEndpoint(let host, let address):
            "Drover's egress proxy refused \(host) (\(address)): it is one of Drover's own endpoints (its API or its Redis), which no sandbox may reach"
        case .unresolvable(let host, let reason):
            "Drover's egress proxy could not resolve \(host): \(reason)"
        case .malformed(let reason):
            "Drover's egress proxy could not use this request: \(reason)"
        case .repositoryOnly(let host, let path):
            "Drover's egress proxy refused \(host)\(path): the session reaches \(host) only for its repositories' git requests (info/refs, git-upload-pack, git-receive-pack). Fix: add \"\(host)\" to the environment's config.networking.allowed_hosts to reach the rest of it"
        case .tooManyConnections(let limit):
            "Drover's egress proxy refused a new connection: this sandbox already has \(limit) open. Fix: close connections, or reuse them (keep-alive)"
        }
    }

    /// ` (or a wildcard such as "*.example.com")` for a name with a parent domain; nothing for an
    /// address or a two-label name.
    static func wildcardHint(for host: String) -> String {
        let labels = host.split(separator: ".")
        guard IPAddressClass.bytes(of: host) == nil, labels.count > 2 else { return "" }
        return " (or a wildcard such as \"*.\(labels.dropFirst().joined(separator: "."))\")"
    }
}

/// Decides where a request may go. The name is checked against the policy, then resolved here;
/// each address is checked, and the connection goes to an address that passed, so a name that
/// resolves differently a moment later (DNS rebinding) changes nothing.
public struct EgressGate: Sendable {
    public let resolver: any EgressResolver
    /// Drover's own endpoints: refused even where a policy names their host exactly.
    public let protected: [SocketAddress]
    /// Hosts on a private network or loopback that the worker itself may connect to for an
    /// agent (its MCP servers, its git repositories), named by the operator
    /// (`DROVER_INTERNAL_HOSTS`): exact names or IPv4 addresses.
    public let internalHosts: [HostPattern]

    public init(resolver: any EgressResolver = SystemResolver(), protected: [SocketAddress] = [], internalHosts: [HostPattern] = []) {
        self.resolver = resolver
        self.protected = protected
        self.internalHosts = internalHosts
    }

    /// Curl's `CURLOPT_RESOLVE` entries that pin a connection the worker makes itself to the
    /// address this gate checked (`host:port:address`, IPv6 in brackets), so a later lookup of
    /// the name cannot choose another.
    public static func pin(host: String, port: Int, to address: SocketAddress) -> [String] {
        guard let ip = address.ipAddress else { return [] }
        return ["\(HostPattern.normalize(host)):\(port):\(ip.contains(":") ? "[\(ip)]" : ip)"]
    }

    /// Decides a connection the worker makes for an agent to a host that an API client named
    /// (an MCP server, a git repository): public addresses, or an internal host the operator
    /// listed exactly; never Drover's own endpoints.
    public func decideForAgent(host: String, port: Int) async -> Result<SocketAddress, EgressRefusal> {
        let name = HostPattern.normalize(host)
        let listed = internalHosts.contains { !$0.isWildcard && $0.text == name }
        let policy = listed ? NetworkPolicy(access: .limited, allowedHosts: internalHosts) : NetworkPolicy(access: .unrestricted)
        return await decide(host: host, port: port, policy: policy, mcpHosts: [])
    }

    public func decide(host rawHost: String, port: Int, policy: NetworkPolicy, mcpHosts: [String]) async -> Result<SocketAddress, EgressRefusal> {
        let host = HostPattern.normalize(rawHost)
        guard (1...65535).contains(port) else { return .failure(.malformed(reason: "port \(port) is out of range")) }
        let literal = IPAddressClass.bytes(of: host)
        guard !host.isEmpty, literal != nil || HostPattern.problem(with: host) == nil else {
            return .failure(.malformed(reason: "'\(rawHost.prefix(100))' is not a host name"))
        }
        // allowed_hosts takes names and IPv4 addresses only, so no IPv6 literal could be listed.
        if let literal, literal.count != 4 { return .failure(.malformed(reason: "IPv6 literals are not supported; use a host name")) }
        let match = policy.match(host: host, mcpHosts: mcpHosts)
        if policy.access == .limited, match == nil { return .failure(.hostNotAllowed(host: host)) }
        // Only an entry that names this very host (not a wildcard, not a registry list) may lead
        // to a loopback or private address: an operator's explicit choice, never a default.
        let explicit = match?.explicit == true && policy.access == .limited
        let addresses: [SocketAddress]
        if literal != nil {
            do {
                addresses = [try SocketAddress(ipAddress: host, port: port)]
            } catch {
                return .failure(.malformed(reason: "'\(host)' is not an address"))
            }
        } else {
            do {
                addresses = try await resolver.resolve(host: host, port: port)
            } catch {
                return .failure(.unresolvable(host: host, reason: "\(error)"))
            }
        }
        var firstRefusal: EgressRefusal?
        // Looked up once per decision, and only when an address looks public.
        var own: Set<[UInt8]>?
        for address in addresses {
            guard let bytes = Self.bytes(of: address) else { continue }
            if protected.contains(where: { Self.sameEndpoint($0, address) }) {
                firstRefusal = firstRefusal ?? .protectedEndpoint(host: host, address: "\(address.ipAddress ?? "?"):\(port)")
                continue
            }
            var kind = IPAddressClass(bytes: bytes)
            if kind == .public {
                own = own ?? Self.hostAddresses()
                if own!.contains(bytes) { kind = .thisHost }
            }
            if kind == .public || (explicit && kind != .unspecified && kind != .multicast) { return .success(address) }
            firstRefusal = firstRefusal ?? .nonPublicAddress(host: host, address: address.ipAddress ?? "?", kind: kind)
        }
        return .failure(firstRefusal ?? .unresolvable(host: host, reason: "no IPv4 or IPv6 address"))
    }

    /// The addresses of the host's interfaces, looked up at each decision (they change with
    /// DHCP): a public-looking address of the host's own leads to its services.
    public static func hostAddresses() -> Set<[UInt8]> {
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0, let first else { return [] }
        defer { freeifaddrs(first) }
        var addresses: Set<[UInt8]> = []
        var next: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = next {
            if let address = entry.pointee.ifa_addr {
                switch Int32(address.pointee.sa_family) {
                case AF_INET:
                    var raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    addresses.insert(withUnsafeBytes(of: &raw) { Array($0) })
                case AF_INET6:
                    var raw = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    addresses.insert(withUnsafeBytes(of: &raw) { Array($0) })
                default: break
                }
            }
            next = entry.pointee.ifa_next
        }
        return addresses
    }

    static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        default: return nil
        }
    }

    /// The same address and port. A protected endpoint on 0.0.0.0 or :: listens on every
    /// address, so it matches any address with its port: the sandbox must not reach it by
    /// another of the host's addresses either.
    static func sameEndpoint(_ protected: SocketAddress, _ address: SocketAddress) -> Bool {
        guard protected.port == address.port, let a = bytes(of: protected), let b = bytes(of: address) else { return false }
        if a.allSatisfy({ $0 == 0 }) { return true }
        return normalizedV4(a) == normalizedV4(b)
    }

    private static func normalizedV4(_ bytes: [UInt8]) -> [UInt8] {
        if bytes.count == 16, bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { return Array(bytes[12...]) }
        return bytes
    }
}

extension EgressGate {
    /// Every address of each `host:port` (resolved now, at start-up): Drover's own endpoints,
    /// for `protected`. A host that does not resolve protects nothing and is left out.
    public static func addresses(of endpoints: [(host: String, port: Int)]) -> [SocketAddress] {
        var addresses: [SocketAddress] = []
        for (host, port) in endpoints {
            if let literal = try? SocketAddress(ipAddress: host, port: port) {
                addresses.append(literal)
            } else {
                addresses += (try? SystemResolver.lookup(host: host, port: port)) ?? []
            }
        }
        return addresses
    }
}
