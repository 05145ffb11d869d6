import DroverCore
import DroverTools
import Foundation

/// What one sandbox's socket leads to: its environment's policy, the session it now serves (a
/// warm sandbox gets one when the pool hands it out), and what it has sent and received.
///
/// The route is found by the socket a connection arrived on, never by anything in the request:
/// a sandbox cannot speak for another one.
public final class EgressRoute: Sendable {
    public let policy: NetworkPolicy
    /// Open connections at most, tunnels and plain requests together: past it, 429. The proxy's
    /// descriptors are the worker's, shared by every session on it.
    public let connectionLimit: Int
    private struct State {
        var session: SessionID?
        var mcpHosts: [String] = []
        var secrets: [EgressSecret] = []
        var repositories: [EgressRepository] = []
        var open = 0
        var usage: [EgressUsage.Key: EgressUsage.Counts] = [:]
    }
    private let state: Locked<State>

    public init(policy: NetworkPolicy, connectionLimit: Int = 256) {
        self.policy = policy
        self.connectionLimit = connectionLimit
        state = Locked(State())
    }

    /// Gives the route to a session: what follows is counted as its, and its agent's MCP servers
    /// are reachable where the policy allows them.
    public func assign(session: SessionID, mcpHosts: [String] = []) {
        state.withLock {
            $0.session = session
            $0.mcpHosts = mcpHosts
        }
    }

    /// The session's `environment_variable` credentials: from now on their placeholders are
    /// replaced on requests to their hosts (and only theirs; an earlier set is forgotten).
    public func use(secrets: [EgressSecret]) {
        state.withLock { $0.secrets = secrets }
    }

    public var secrets: [EgressSecret] { state.withLock { $0.secrets } }

    /// The session's git repositories: their smart-HTTP paths are reachable whatever the policy
    /// says of their host, with their tokens added (an earlier set is forgotten).
    public func use(repositories: [EgressRepository]) {
        state.withLock { $0.repositories = repositories }
    }

    public var repositories: [EgressRepository] { state.withLock { $0.repositories } }

    /// The session's repositories served at `host:port`.
    func repositories(host: String, port: Int) -> [EgressRepository] {
        state.withLock { $0.repositories.filter { $0.serves(host: host, port: port) } }
    }

    public var session: SessionID? { state.withLock { $0.session } }
    public var mcpHosts: [String] { state.withLock { $0.mcpHosts } }
    public var openConnections: Int { state.withLock { $0.open } }

    /// Takes a connection slot, or says the sandbox has too many open.
    func open() -> Bool {
        state.withLock {
            guard $0.open < connectionLimit else { return false }
            $0.open += 1
            return true
        }
    }

    func close() {
        state.withLock { $0.open -= 1 }
    }

    /// Adds to the counts of `host:port` under `verdict`: a request when it is decided, its bytes
    /// (`requests: 0`) when its connection is done.
    func record(host: String, port: Int, verdict: String, requests: Int = 1, sent: Int = 0, received: Int = 0) {
        state.withLock {
            let key = EgressUsage.Key(host: host, port: port, verdict: verdict)
            var counts = $0.usage[key] ?? EgressUsage.Counts()
            counts.requests += requests
            counts.bytesSent += sent
            counts.bytesReceived += received
            $0.usage[key] = counts
        }
    }

    /// Everything counted since the route was made or last drained, and resets the counts.
    public func drainUsage() -> EgressUsage {
        state.withLock {
            let usage = EgressUsage(session: $0.session, entries: $0.usage)
            $0.usage = [:]
            return usage
        }
    }

    /// Everything counted so far, kept.
    public var usage: EgressUsage { state.withLock { EgressUsage(session: $0.session, entries: $0.usage) } }
}

/// Requests and bytes by host, port and verdict.
public struct EgressUsage: Sendable, Equatable {
    public struct Key: Sendable, Hashable, Comparable {
        public let host: String
        public let port: Int
        /// `allowed`, or the refusal (`refused: host not allowed`, ...).
        public let verdict: String

        public init(host: String, port: Int, verdict: String) {
            self.host = host
            self.port = port
            self.verdict = verdict
        }

        /// The verdict of a connection that was made.
        public static let allowed = "allowed"
        public static func < (a: Key, b: Key) -> Bool { (a.host, a.port, a.verdict) < (b.host, b.port, b.verdict) }
    }
    public struct Counts: Sendable, Equatable {
        public var requests = 0
        public var bytesSent = 0
        public var bytesReceived = 0

        public init(requests: Int = 0, bytesSent: Int = 0, bytesReceived: Int = 0) {
            self.requests = requests
            self.bytesSent = bytesSent
            self.bytesReceived = bytesReceived
        }
    }
    public let session: SessionID?
    public let entries: [Key: Counts]

    public init(session: SessionID?, entries: [Key: Counts]) {
        self.session = session
        self.entries = entries
    }

    public var isEmpty: Bool { entries.isEmpty }
}
