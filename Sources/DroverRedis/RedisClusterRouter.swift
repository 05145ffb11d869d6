import DroverCore
import Foundation
import Synchronization

/// Sends commands to a Redis Cluster: each to the master that owns its keys' slot, over that
/// node's shared connections, so a pipeline whose keys live on three masters goes out as three
/// pipelines at once.
///
/// The slot map is read from the nodes (`CLUSTER SLOTS`) and read again when it proves stale: a
/// `MOVED` reply (the slot has a new owner; the reply names it, so the command goes there at
/// once), `CLUSTERDOWN` (a failover under way), or a master that cannot be reached (killed, and
/// about to be replaced by its replica). `ASK` (a slot half-way through a migration) sends that
/// one command to the named node behind `ASKING`, without touching the map.
///
/// What may be sent again follows the single-server rules: a command that never reached a
/// server, or was refused with a redirection, goes again within the reconnect window; one whose
/// connection broke mid-flight only when it is idempotent.
final class RedisClusterRouter: Sendable {
    let url: RedisURL
    let options: RedisClientOptions
    /// What each node's connections get: a short reconnect window, because a node that does not
    /// answer may have been replaced, and the router, not the connection, finds its successor.
    let nodeOptions: RedisClientOptions
    private let state: Mutex<State>

    private struct State {
        var topology: RedisClusterTopology
        /// Moves on with every full read of the topology.
        var generation = 0
        var refreshing: Task<Void, Never>?
        /// Kept for nodes that stop being masters too: a failed master may come back as one.
        var pools: [RedisURL.Endpoint: [RedisSharedConnection]] = [:]
        var closed = false
        var nextKeyless = 0
    }

    private init(url: RedisURL, options: RedisClientOptions, topology: RedisClusterTopology) {
        self.url = url
        self.options = options
        var nodeOptions = options
        nodeOptions.reconnectWindow = min(options.reconnectWindow, .milliseconds(300))
        self.nodeOptions = nodeOptions
        self.state = Mutex(State(topology: topology))
    }

    /// Reads the slot map from the first seed that answers, so that a wrong address, a password
    /// or a server without cluster support fails now, with a clear error.
    static func connect(_ url: RedisURL, options: RedisClientOptions) async throws(RedisError) -> RedisClusterRouter {
        let topology = try await readTopology(url: url, candidates: url.clusterSeeds, options: options)
        return RedisClusterRouter(url: url, options: options, topology: topology)
    }

    func close() {
        let pools = state.withLock { state in
            state.closed = true
            return state.pools.values.flatMap { $0 }
        }
        for connection in pools { connection.close() }
    }

    /// The masters serving slots now.
    var masters: [RedisURL.Endpoint] {
        state.withLock { state in state.topology.masters.filter { state.topology.owns($0) } }
    }

    /// The slot of a command's keys; nil for a command without keys. Throws `.crossSlot`.
    static func slot(of command: [String]) throws(RedisError) -> Int? {
        try RedisHashSlot.common(RedisCommandKeys.of(command), command: command.first ?? "")
    }

    /// The master of `slot`; for no slot, one master after another, to spread keyless commands.
    func owner(of slot: Int?) -> RedisURL.Endpoint? {
        state.withLock { state in
            if let slot { return state.topology.owner(of: slot) }
            let masters = state.topology.masters
            guard !masters.isEmpty else { return nil }
            state.nextKeyless &+= 1
            return masters[state.nextKeyless % masters.count]
        }
    }

    var generation: Int { state.withLock { $0.generation } }

    // MARK: Sending

    private struct Pending {
        let index: Int
        var redirection: RedisRedirection?
    }

    /// Sends `commands` and returns their replies in order, as `RedisSharedConnection.perform`
    /// does for one server. With `node`, every command goes to that node, keys or not.
    func perform(
        _ commands: [[String]], script: RedisScript?, idempotent: Bool, retriesUnready: Bool, node: RedisURL.Endpoint? = nil
    ) async throws(RedisError) -> [RedisValue] {
        var slots: [Int?] = []
        slots.reserveCapacity(commands.count)
        for command in commands { slots.append(node == nil ? try Self.slot(of: command) : nil) }
        var replies = [RedisValue?](repeating: nil, count: commands.count)
        var pending = commands.indices.map { Pending(index: $0) }
        var backoff = ReconnectBackoff(options)
        var redirections = 0
        while true {
            let seen = generation
            var routes: [RedisURL.Endpoint: [Pending]] = [:]
            var unserved: [Pending] = []
            for item in pending {
                if let endpoint = node ?? item.redirection?.endpoint ?? owner(of: slots[item.index]) {
                    routes[endpoint, default: []].append(item)
                } else {
                    unserved.append(item)
                }
            }
            let results = await send(routes, commands: commands, retriesUnready: retriesUnready, idempotent: idempotent)
            var next = unserved
            var failure: RedisError? =
                unserved.isEmpty ? nil : .server("CLUSTERDOWN no master serves the slot of \(commands[unserved[0].index].first ?? "?")")
            var stale = !unserved.isEmpty
            var unloaded: Set<RedisURL.Endpoint> = []
            for (endpoint, members, result) in results {
                switch result {
                case .success(let values):
                    var cursor = 0
                    for member in members {
                        if member.redirection?.kind == .ask { cursor += 1 }  // ASKING's +OK
                        let value = values[cursor]
                        cursor += 1
                        if let redirection = RedisRedirection(value) {
                            if redirection.kind == .moved {
                                state.withLock { $0.topology.assign(redirection.slot, to: redirection.endpoint) }
                                stale = true
                            }
                            redirections += 1
                            next.append(Pending(index: member.index, redirection: redirection))
                        } else if case .error(let message) = value,
                            message.hasPrefix("CLUSTERDOWN") || (retriesUnready && message.hasPrefix("TRYAGAIN"))
                        {
                            next.append(Pending(index: member.index))
                            failure = .server(message)
                            stale = stale || message.hasPrefix("CLUSTERDOWN")
                        } else if script != nil, case .error(let message) = value, message.hasPrefix("NOSCRIPT") {
                            // A node that has not run this script yet: load it there, then call again.
                            unloaded.insert(endpoint)
                            next.append(member)
                        } else {
                            replies[member.index] = value
                        }
                    }
                case .failure(let error):
                    // Sent again, to whichever master owns the slot once the map is read again:
                    // what never reached a server, and what may run twice.
                    switch error {
                    case .connectionFailed,
                        .connectionLost where idempotent:
                        next += members.map { Pending(index: $0.index) }
                        failure = error
                        stale = true
                    default:
                        throw error
                    }
                }
            }
            if next.isEmpty { return replies.map { $0 ?? .null } }
            pending = next
            if let script {
                for endpoint in unloaded {
                    let loaded = try await connection(to: endpoint).perform(
                        [["SCRIPT", "LOAD", script.source]], idempotent: true, retriesUnready: true)
                    if case .error(let message) = loaded[0] {
                        throw .serverError(code: "ERR", message: "cannot load script \(script.name) on \(endpoint): \(message)")
                    }
                }
            }
            guard redirections <= 8 * commands.count else {
                throw .unexpectedReply(
                    "the cluster redirected \(commands.first?.first ?? "a command") \(redirections) times; its slot map keeps changing")
            }
            if stale { await refresh(after: seen) }
            if let failure {
                guard let wait = backoff.next() else { throw failure }
                try? await Task.sleep(for: wait)
            }
        }
    }

    /// One request per node, all at once; an `ASK`ed command goes behind `ASKING`.
    private func send(
        _ routes: [RedisURL.Endpoint: [Pending]], commands: [[String]], retriesUnready: Bool, idempotent: Bool
    ) async -> [(RedisURL.Endpoint, [Pending], Result<[RedisValue], RedisError>)] {
        func request(_ endpoint: RedisURL.Endpoint, _ members: [Pending]) async -> Result<[RedisValue], RedisError> {
            var batch: [[String]] = []
            batch.reserveCapacity(members.count)
            for member in members {
                if member.redirection?.kind == .ask { batch.append(["ASKING"]) }
                batch.append(commands[member.index])
            }
            do throws(RedisError) {
                return .success(try await connection(to: endpoint).perform(batch, idempotent: idempotent, retriesUnready: retriesUnready))
            } catch {
                return .failure(error)
            }
        }
        if routes.count == 1, let (endpoint, members) = routes.first {
            return [(endpoint, members, await request(endpoint, members))]
        }
        return await withTaskGroup(of: (RedisURL.Endpoint, [Pending], Result<[RedisValue], RedisError>).self) { group in
            for (endpoint, members) in routes {
                group.addTask { (endpoint, members, await request(endpoint, members)) }
            }
            var results: [(RedisURL.Endpoint, [Pending], Result<[RedisValue], RedisError>)] = []
            for await result in group { results.append(result) }
            return results
        }
    }

    /// The least loaded of the node's shared connections, opened on first use.
    private func connection(to endpoint: RedisURL.Endpoint) throws(RedisError) -> RedisSharedConnection {
        let chosen: RedisSharedConnection? = state.withLock { state in
            if state.closed { return nil }
            if let pool = state.pools[endpoint] {
                return pool.min { $0.load < $1.load }
            }
            let pool = (1...max(1, options.poolSize)).map {
                RedisSharedConnection(url: url.node(endpoint), options: nodeOptions, name: "drover-redis-\(endpoint.portOrPath)-\($0)")
            }
            state.pools[endpoint] = pool
            return pool[0]
        }
        guard let chosen else { throw .closed }
        return chosen
    }

    // MARK: The slot map

    /// Reads the slot map again, unless someone has since `seen` was taken. Concurrent callers
    /// share one read.
    func refresh(after seen: Int) async {
        let task = state.withLock { state -> Task<Void, Never>? in
            guard state.generation == seen, !state.closed else { return nil }
            if let running = state.refreshing { return running }
            let known = state.topology.masters
            let running = Task { [self] in
                let read = try? await Self.readTopology(url: url, candidates: known + url.clusterSeeds, options: nodeOptions)
                self.state.withLock { state in
                    if let read { state.topology = read }
                    state.generation += 1
                    state.refreshing = nil
                }
            }
            state.refreshing = running
            return running
        }
        await task?.value
    }

    /// Asks each candidate in turn for `CLUSTER SLOTS`; the first answer wins.
    private static func readTopology(
        url: RedisURL, candidates: [RedisURL.Endpoint], options: RedisClientOptions
    ) async throws(RedisError) -> RedisClusterTopology {
        var distinct: [RedisURL.Endpoint] = []
        for candidate in candidates where !distinct.contains(candidate) { distinct.append(candidate) }
        let unique = distinct
        let result: Result<RedisClusterTopology, RedisError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var reasons: [String] = []
                for endpoint in unique {
                    do throws(RedisError) {
                        let connection = try RedisConnection.open(
                            url.node(endpoint), connectTimeout: options.connectTimeout, commandTimeout: options.commandTimeout)
                        defer { connection.close() }
                        let reply = try connection.command(["CLUSTER", "SLOTS"])
                        if case .error(let message) = reply {
                            if message.contains("cluster support disabled") {
                                continuation.resume(
                                    returning: .failure(
                                        .clusterUnavailable(
                                            endpoint: endpoint.description, reason: "\(endpoint) is a single server, not a cluster node (\(message))")
                                    ))
                                return
                            }
                            reasons.append("\(endpoint): \(message)")
                            continue
                        }
                        continuation.resume(returning: .success(try RedisClusterTopology(clusterSlots: reply, askedNode: endpoint)))
                        return
                    } catch {
                        if case .authenticationFailed = error {
                            continuation.resume(returning: .failure(error))
                            return
                        }
                        reasons.append("\(endpoint): \(error)")
                    }
                }
                continuation.resume(
                    returning: .failure(
                        .connectionFailed(endpoint: url.description, reason: "no node answered CLUSTER SLOTS (\(reasons.joined(separator: "; ")))")))
            }
        }
        return try result.get()
    }
}

extension RedisClusterTopology {
    /// Whether `master` serves any slot.
    func owns(_ master: RedisURL.Endpoint) -> Bool {
        guard let index = masters.firstIndex(of: master) else { return false }
        return owners.contains(Int16(index))
    }
}

extension RedisURL.Endpoint {
    /// For thread names, which the kernel cuts at 15 characters.
    var portOrPath: String {
        switch self {
        case .tcp(_, let port): String(port)
        case .unix(let path): String(path.split(separator: "/").last ?? "unix")
        }
    }
}
