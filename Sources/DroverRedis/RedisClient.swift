import DroverCore
import Foundation
import Synchronization

/// An async Redis client over hiredis: a small pool of connections, each on its own thread.
public final class RedisClient: Sendable {
    public let url: RedisURL
    public let options: RedisClientOptions
    private let pool: Mutex<PoolState>
    private let namePrefix: String

    private struct PoolState: ~Copyable {
        var idle: [RedisConnectionSlot] = []
        var created = 0
        var waiters: [CheckedContinuation<RedisConnectionSlot?, Never>] = []
        var closed = false
        var all: [RedisConnectionSlot] = []
    }

    private init(url: RedisURL, options: RedisClientOptions) {
        self.url = url
        self.options = options
        self.pool = Mutex(PoolState())
        self.namePrefix = "drover-redis"
    }

    /// Connects once, so that a wrong address or password fails now, with a clear error.
    public static func connect(_ url: RedisURL, options: RedisClientOptions = RedisClientOptions()) async throws(RedisError) -> RedisClient {
        let client = RedisClient(url: url, options: options)
        let slot = try await client.acquire()
        do {
            try await slot.connectOnce()
        } catch {
            client.release(slot)
            client.close()
            throw error
        }
        client.release(slot)
        return client
    }

    public static func connect(_ text: String, options: RedisClientOptions = RedisClientOptions()) async throws(RedisError) -> RedisClient {
        try await connect(RedisURL(parsing: text), options: options)
    }

    /// Closes every pooled connection. Commands after this throw `.closed`.
    public func close() {
        let (slots, waiters) = pool.withLock { state -> ([RedisConnectionSlot], [CheckedContinuation<RedisConnectionSlot?, Never>]) in
            state.closed = true
            let result = (state.all, state.waiters)
            state.waiters = []
            state.idle = []
            return result
        }
        for waiter in waiters { waiter.resume(returning: nil) }
        for slot in slots { slot.close() }
    }

    // MARK: Commands

    /// Sends one command. Set `idempotent` for commands that may be re-sent after a broken
    /// connection (reads, and writes whose repetition is harmless).
    @discardableResult
    public func send(_ arguments: [String], idempotent: Bool = false) async throws(RedisError) -> RedisValue {
        try await withSlot { slot throws(RedisError) in
            try await slot.perform(idempotent: idempotent) { connection throws(RedisError) in
                try connection.command(arguments).throwingErrorReply()
            }
        }
    }

    @discardableResult
    public func send(_ arguments: String..., idempotent: Bool = false) async throws(RedisError) -> RedisValue {
        try await send(arguments, idempotent: idempotent)
    }

    /// Sends all commands in one round trip. Error replies are returned as `.error` values.
    public func pipeline(_ commands: [[String]], idempotent: Bool = false) async throws(RedisError) -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        return try await withSlot { slot throws(RedisError) in
            try await slot.perform(idempotent: idempotent) { connection throws(RedisError) in
                try connection.pipeline(commands)
            }
        }
    }

    /// Runs a script by its SHA-1, loading it when the server does not know it (a fresh or
    /// restarted server, or `SCRIPT FLUSH`).
    public func eval(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisValue {
        try await withSlot { slot throws(RedisError) in
            try await slot.perform(idempotent: script.isIdempotent) { connection throws(RedisError) in
                try RedisClient.evalOn(connection, script, keys: keys, arguments: arguments)
            }
        }
    }

    static func evalOn(_ connection: RedisConnection, _ script: RedisScript, keys: [String], arguments: [String]) throws(RedisError) -> RedisValue {
        let call = ["EVALSHA", script.sha1, String(keys.count)] + keys + arguments
        let reply = try connection.command(call)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            let loaded = try connection.command(["SCRIPT", "LOAD", script.source])
            if case .error(let loadError) = loaded {
                throw .serverError(code: "ERR", message: "cannot load script \(script.name): \(loadError)")
            }
            return try connection.command(call).throwingErrorReply()
        }
        return try reply.throwingErrorReply()
    }

    /// A connection outside the pool, for blocking reads such as `BZPOPMIN` and `XREAD BLOCK`,
    /// which would otherwise hold a pooled connection hostage.
    public func blockingConnection(name: String = "blocking") -> RedisBlockingConnection {
        RedisBlockingConnection(
            slot: RedisConnectionSlot(url: url, options: options, blocking: true, name: "\(namePrefix)-\(name)")
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

    // MARK: Pool

    private func withSlot<T: Sendable>(_ body: (RedisConnectionSlot) async throws(RedisError) -> T) async throws(RedisError) -> T {
        let slot = try await acquire()
        defer { release(slot) }
        return try await body(slot)
    }

    private func acquire() async throws(RedisError) -> RedisConnectionSlot {
        enum Next { case ready(RedisConnectionSlot), wait, closed }
        let next: Next = pool.withLock { state in
            if state.closed { return .closed }
            if let slot = state.idle.popLast() { return .ready(slot) }
            if state.created < max(1, options.poolSize) {
                state.created += 1
                let slot = RedisConnectionSlot(url: url, options: options, blocking: false, name: "\(namePrefix)-\(state.created)")
                state.all.append(slot)
                return .ready(slot)
            }
            return .wait
        }
        switch next {
        case .ready(let slot): return slot
        case .closed: throw .closed
        case .wait:
            let slot: RedisConnectionSlot? = await withCheckedContinuation { continuation in
                let immediate: RedisConnectionSlot?? = pool.withLock { state in
                    if state.closed { return .some(nil) }
                    if let slot = state.idle.popLast() { return .some(slot) }
                    state.waiters.append(continuation)
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
            guard let slot else { throw .closed }
            return slot
        }
    }

    private func release(_ slot: RedisConnectionSlot) {
        let waiter: CheckedContinuation<RedisConnectionSlot?, Never>? = pool.withLock { state in
            if state.closed { return nil }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(slot)
            return nil
        }
        waiter?.resume(returning: slot)
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
