import DroverCore
import Foundation
import Synchronization

/// An async Redis client over hiredis: a few connections, each on its own thread, that every
/// caller shares. Concurrent commands are pipelined (`RedisSharedConnection`); blocking reads get
/// a connection of their own (`blockingConnection`).
///
/// With a `redis+cluster://` URL it speaks to a Redis Cluster: each command goes to the master
/// of its keys' slot, with a few connections per master (`RedisClusterRouter`).
public final class RedisClient: Sendable {
    public let url: RedisURL
    public let options: RedisClientOptions
    private let connections: [RedisSharedConnection]
    private let router: RedisClusterRouter?
    private let namePrefix = "drover-redis"

    private init(url: RedisURL, options: RedisClientOptions) {
        self.url = url
        self.options = options
        self.router = nil
        self.connections = (1...max(1, options.poolSize)).map {
            RedisSharedConnection(url: url, options: options, name: "drover-redis-\($0)")
        }
    }

    private init(router: RedisClusterRouter) {
        self.url = router.url
        self.options = router.options
        self.router = router
        self.connections = []
    }

    /// Whether this client speaks to a Redis Cluster.
    public var isCluster: Bool { router != nil }

    /// Connects once, so that a wrong address or password fails now, with a clear error.
    public static func connect(_ url: RedisURL, options: RedisClientOptions = RedisClientOptions()) async throws(RedisError) -> RedisClient {
        if url.isCluster {
            return RedisClient(router: try await RedisClusterRouter.connect(url, options: options))
        }
        let opened: Result<Void, RedisError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    returning: Result { () throws(RedisError) in
                        try RedisConnection.open(url, connectTimeout: options.connectTimeout, commandTimeout: options.commandTimeout).close()
                    })
            }
        }
        try opened.get()
        return RedisClient(url: url, options: options)
    }

    public static func connect(_ text: String, options: RedisClientOptions = RedisClientOptions()) async throws(RedisError) -> RedisClient {
        try await connect(RedisURL(parsing: text), options: options)
    }

    /// Closes every connection once what is queued on it is answered. Commands after this
    /// throw `.closed`.
    public func close() {
        for connection in connections { connection.close() }
        router?.close()
    }

    // MARK: Commands

    /// Sends one command. Set `idempotent` for commands that may be re-sent after a broken
    /// connection (reads, and writes whose repetition is harmless).
    @discardableResult
    public func send(_ arguments: [String], idempotent: Bool = false) async throws(RedisError) -> RedisValue {
        try await perform([arguments], idempotent: idempotent, retriesUnready: true)[0].throwingErrorReply()
    }

    @discardableResult
    public func send(_ arguments: String..., idempotent: Bool = false) async throws(RedisError) -> RedisValue {
        try await send(arguments, idempotent: idempotent)
    }

    /// Sends all commands in one round trip. Error replies are returned as `.error` values.
    public func pipeline(_ commands: [[String]], idempotent: Bool = false) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await perform(commands, idempotent: idempotent, retriesUnready: false)
    }

    /// Runs a script by its SHA-1, loading it when the server does not know it (a fresh or
    /// restarted server, or `SCRIPT FLUSH`).
    ///
    /// Keys that hash to different cluster slots throw `.crossSlot`, on a single server too: a
    /// script that works only on one server is a bug waiting for the day Drover runs on a cluster.
    public func eval(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisValue {
        _ = try RedisHashSlot.common(keys, command: "script \(script.name)")
        let call = ["EVALSHA", script.sha1, String(keys.count)] + keys + arguments
        return try await perform([call], script: script, idempotent: script.isIdempotent, retriesUnready: true)[0].throwingErrorReply()
    }

    /// The one place that picks the route: the cluster's router, or the least loaded connection.
    private func perform(
        _ commands: [[String]], script: RedisScript? = nil, idempotent: Bool, retriesUnready: Bool
    ) async throws(RedisError) -> [RedisValue] {
        if let router {
            return try await router.perform(commands, script: script, idempotent: idempotent, retriesUnready: retriesUnready)
        }
        return try await leastLoaded.perform(commands, script: script, idempotent: idempotent, retriesUnready: retriesUnready)
    }

    /// Every key matching `pattern`, from every master of a cluster. Keys written meanwhile may
    /// or may not be listed, as with `SCAN` itself.
    public func scanKeys(matching pattern: String, count: Int = 1000) async throws(RedisError) -> [String] {
        var keys: [String] = []
        for node in nodes {
            var cursor = "0"
            repeat {
                let reply = try await send(["SCAN", cursor, "MATCH", pattern, "COUNT", String(count)], to: node)
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let found = parts[1].array else {
                    throw .unexpectedReply("SCAN answered \(reply)")
                }
                keys += found.compactMap(\.string)
                cursor = next
            } while cursor != "0"
        }
        return keys
    }

    /// Sends `arguments` to every master of a cluster (to the server, for one server) and returns
    /// each node's reply: for `INFO` and other per-node statistics.
    public func sendToEveryNode(_ arguments: [String]) async throws(RedisError) -> [RedisValue] {
        var replies: [RedisValue] = []
        for node in nodes { replies.append(try await send(arguments, to: node)) }
        return replies
    }

    /// Each master of a cluster; nil, the one server, otherwise.
    private var nodes: [RedisURL.Endpoint?] {
        router.map { $0.masters.map(Optional.some) } ?? [nil]
    }

    /// Sends a read to `node` (a cluster's master), or to the server when nil.
    private func send(_ arguments: [String], to node: RedisURL.Endpoint?) async throws(RedisError) -> RedisValue {
        guard let router, let node else { return try await send(arguments, idempotent: true) }
        return try await router.perform([arguments], script: nil, idempotent: true, retriesUnready: true, node: node)[0].throwingErrorReply()
    }

    /// The connection with the fewest requests in flight: a large reply on one holds up only
    /// the callers that share it.
    private var leastLoaded: RedisSharedConnection {
        var best = connections[0]
        var bestLoad = best.load
        for connection in connections.dropFirst() where bestLoad > 0 {
            let load = connection.load
            if load < bestLoad { (best, bestLoad) = (connection, load) }
        }
        return best
    }

    /// A connection outside the pool, for blocking reads such as `BZPOPMIN` and `XREAD BLOCK`,
    /// which would otherwise hold a pooled connection hostage.
    public func blockingConnection(name: String = "blocking") -> RedisBlockingConnection {
        if let router {
            return RedisBlockingConnection(cluster: router, name: "\(namePrefix)-\(name)")
        }
        return RedisBlockingConnection(
            slot: RedisConnectionSlot(url: url, options: options, name: "\(namePrefix)-\(name)")
        )
    }

    /// Whether Redis answers a PING on a fresh connection within `timeout`: for `/health`, which
    /// must answer at once during an outage rather than wait out the pool's reconnect window.
    /// Runs on a Dispatch thread, since hiredis blocks.
    public func isReachable(timeout: Duration = .seconds(1)) async -> Bool {
        let url = router?.owner(of: nil).map(self.url.node) ?? self.url
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: RedisConnection.answersPing(url, connectTimeout: timeout, commandTimeout: timeout))
            }
        }
    }
}

/// A connection of its own for blocking commands. Cancelling the awaiting task breaks the
/// blocking read at once (the socket is shut down), and the next command reconnects.
///
/// On a cluster it connects to the master of the command's key (any master for a command without
/// keys, such as `SUBSCRIBE`), and moves when the key's slot moves or its master is replaced.
public final class RedisBlockingConnection: Sendable {
    private let target: Mutex<Target>
    private let router: RedisClusterRouter?
    private let name: String

    private struct Target {
        var slot: RedisConnectionSlot?
        var endpoint: RedisURL.Endpoint?
    }

    init(slot: RedisConnectionSlot) {
        self.target = Mutex(Target(slot: slot))
        self.router = nil
        self.name = ""
    }

    init(cluster router: RedisClusterRouter, name: String) {
        self.target = Mutex(Target())
        self.router = router
        self.name = name
    }

    @discardableResult
    public func send(_ arguments: [String]) async throws -> RedisValue {
        guard let router else {
            return try await interruptible(currentSlot, expectsIdle: true) { connection throws(RedisError) in
                try connection.command(arguments).throwingErrorReply()
            }
        }
        return try await sendToCluster(arguments, router: router)
    }

    /// Waits for the next message of a subscription (after `SUBSCRIBE` was sent). A broken
    /// connection throws: the subscription is gone with it.
    public func receive() async throws -> RedisValue {
        try await interruptible(currentSlot, expectsIdle: false) { connection throws(RedisError) in
            try connection.readReply()
        }
    }

    public func close() {
        target.withLock { $0.slot }?.close()
    }

    private var currentSlot: RedisConnectionSlot {
        get throws {
            guard let slot = target.withLock({ $0.slot }) else { throw RedisError.closed }
            return slot
        }
    }

    /// Sends to the owner of the command's slot, following redirections, and finding a new owner
    /// when the old one cannot be reached, within the reconnect window.
    private func sendToCluster(_ arguments: [String], router: RedisClusterRouter) async throws -> RedisValue {
        let keySlot = try RedisClusterRouter.slot(of: arguments)
        var backoff = ReconnectBackoff(router.options)
        var redirection: RedisRedirection?
        var redirections = 0
        while true {
            let seen = router.generation
            var failure: RedisError
            if let endpoint = redirection?.endpoint ?? router.owner(of: keySlot) {
                let asking = redirection?.kind == .ask
                let connection = slot(for: endpoint, router: router)
                do {
                    let reply = try await interruptible(connection, expectsIdle: true) { connection throws(RedisError) in
                        try asking ? connection.pipeline([["ASKING"], arguments])[1] : connection.command(arguments)
                    }
                    if let next = RedisRedirection(reply), redirections < 8 {
                        redirections += 1
                        redirection = next
                        if next.kind == .moved { await router.refresh(after: seen) }
                        continue
                    }
                    guard case .error(let message) = reply, message.hasPrefix("CLUSTERDOWN") else {
                        return try reply.throwingErrorReply()
                    }
                    failure = .server(message)
                } catch let error as RedisError {
                    guard case .connectionFailed = error else { throw error }
                    failure = error
                }
            } else {
                failure = .server("CLUSTERDOWN no master serves the slot of \(arguments.first ?? "?")")
            }
            redirection = nil
            await router.refresh(after: seen)
            guard let wait = backoff.next() else { throw failure }
            try await Task.sleep(for: wait)
        }
    }

    /// The connection to `endpoint`, replacing one to another node.
    private func slot(for endpoint: RedisURL.Endpoint, router: RedisClusterRouter) -> RedisConnectionSlot {
        let (slot, replaced) = target.withLock { target -> (RedisConnectionSlot, RedisConnectionSlot?) in
            if let slot = target.slot, target.endpoint == endpoint { return (slot, nil) }
            let old = target.slot
            let fresh = RedisConnectionSlot(url: router.url.node(endpoint), options: router.nodeOptions, name: name)
            target = Target(slot: fresh, endpoint: endpoint)
            return (fresh, old)
        }
        replaced?.close()
        return slot
    }

    /// Runs `body` on `slot` so that cancelling the task breaks its read at once.
    private func interruptible(
        _ slot: RedisConnectionSlot, expectsIdle: Bool, _ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> RedisValue
    ) async throws -> RedisValue {
        try Task.checkCancellation()
        let cancellation = RedisCallCancellation()
        do {
            let result = try await withTaskCancellationHandler {
                try await slot.perform(idempotent: false, cancellation: cancellation, expectsIdle: expectsIdle, body)
            } onCancel: {
                slot.interrupt(cancellation)
            }
            try Task.checkCancellation()
            return result
        } catch {
            // The broken socket is how cancellation ends the read; report it as what it is.
            try Task.checkCancellation()
            throw error
        }
    }
}
