import DroverCore
import Foundation
import Synchronization

/// An async Redis client over hiredis: a few connections, each on its own thread, that every
/// caller shares. Concurrent commands are pipelined (`RedisSharedConnection`); blocking reads get
/// a connection of their own (`blockingConnection`).
public final class RedisClient: Sendable {
    public let url: RedisURL
    public let options: RedisClientOptions
    private let connections: [RedisSharedConnection]
    private let namePrefix = "drover-redis"

    private init(url: RedisURL, options: RedisClientOptions) {
        self.url = url
        self.options = options
        self.connections = (1...max(1, options.poolSize)).map {
            RedisSharedConnection(url: url, options: options, name: "drover-redis-\($0)")
        }
    }

    /// Connects once, so that a wrong address or password fails now, with a clear error.
    public static func connect(_ url: RedisURL, options: RedisClientOptions = RedisClientOptions()) async throws(RedisError) -> RedisClient {
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
    }

    // MARK: Commands

    /// Sends one command. Set `idempotent` for commands that may be re-sent after a broken
    /// connection (reads, and writes whose repetition is harmless).
    @discardableResult
    public func send(_ arguments: [String], idempotent: Bool = false) async throws(RedisError) -> RedisValue {
        try await leastLoaded.perform([arguments], idempotent: idempotent, retriesUnready: true)[0].throwingErrorReply()
    }

    @discardableResult
    public func send(_ arguments: String..., idempotent: Bool = false) async throws(RedisError) -> RedisValue {
        try await send(arguments, idempotent: idempotent)
    }

    /// Sends all commands in one round trip. Error replies are returned as `.error` values.
    public func pipeline(_ commands: [[String]], idempotent: Bool = false) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await leastLoaded.perform(commands, idempotent: idempotent, retriesUnready: false)
    }

    /// Runs a script by its SHA-1, loading it when the server does not know it (a fresh or
    /// restarted server, or `SCRIPT FLUSH`).
    public func eval(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisValue {
        let call = ["EVALSHA", script.sha1, String(keys.count)] + keys + arguments
        return try await leastLoaded.perform([call], script: script, idempotent: script.isIdempotent, retriesUnready: true)[0]
            .throwingErrorReply()
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
        RedisBlockingConnection(
            slot: RedisConnectionSlot(url: url, options: options, name: "\(namePrefix)-\(name)")
        )
    }

    /// Whether Redis answers a PING on a fresh connection within `timeout`: for `/health`, which
    /// must answer at once during an outage rather than wait out the pool's reconnect window.
    /// Runs on a Dispatch thread, since hiredis blocks.
    public func isReachable(timeout: Duration = .seconds(1)) async -> Bool {
        let url = self.url
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: RedisConnection.answersPing(url, connectTimeout: timeout, commandTimeout: timeout))
            }
        }
    }
}

/// A connection of its own for blocking commands. Cancelling the awaiting task breaks the
/// blocking read at once (the socket is shut down), and the next command reconnects.
public final class RedisBlockingConnection: Sendable {
    private let slot: RedisConnectionSlot

    init(slot: RedisConnectionSlot) {
        self.slot = slot
    }

    @discardableResult
    public func send(_ arguments: [String]) async throws -> RedisValue {
        try await interruptible(expectsIdle: true) { connection throws(RedisError) in
            try connection.command(arguments).throwingErrorReply()
        }
    }

    /// Waits for the next message of a subscription (after `SUBSCRIBE` was sent). A broken
    /// connection throws: the subscription is gone with it.
    public func receive() async throws -> RedisValue {
        try await interruptible(expectsIdle: false) { connection throws(RedisError) in
            try connection.readReply()
        }
    }

    /// Runs `body` on the slot so that cancelling the task breaks its read at once.
    private func interruptible(
        expectsIdle: Bool, _ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> RedisValue
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

    public func close() {
        slot.close()
    }
}
