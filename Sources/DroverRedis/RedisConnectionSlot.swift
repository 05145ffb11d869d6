import DroverCore
import Foundation
import Synchronization

/// How a client connects and how hard it tries to get a connection back.
public struct RedisClientOptions: Sendable {
    public var connectTimeout: Duration = .seconds(2)
    /// Socket read/write timeout for ordinary commands.
    public var commandTimeout: Duration = .seconds(30)
    /// How long to keep reconnecting (with backoff) before a command fails.
    public var reconnectWindow: Duration = .seconds(15)
    public var initialBackoff: Duration = .milliseconds(20)
    public var maximumBackoff: Duration = .seconds(1)
    /// Connections that ordinary commands share. Each pipelines any number of concurrent
    /// callers, so a few suffice; more spread reply parsing over more threads, and keep a large
    /// reply from holding up everyone.
    public var poolSize: Int = 2

    public init() {}
}

/// A connection for blocking commands and the one thread allowed to touch it. Reconnects lazily,
/// with backoff. Its reads wait as long as the command blocks, with no socket timeout.
final class RedisConnectionSlot: @unchecked Sendable {
    let url: RedisURL
    let options: RedisClientOptions
    private let thread: DedicatedThread
    /// Only touched on `thread`.
    private var connection: RedisConnection?
    /// Shared between `thread` and cancellation handlers, which `shutdown(2)` the socket to break
    /// a blocking read. One lock orders a cancellation against the call reaching the socket, so
    /// it is never lost: either the call sees it before it starts, or the handler sees the call.
    private let interruption = Mutex(Interruption())

    private struct Interruption {
        /// The live connection's socket, -1 when there is none. Set to -1 (under the lock)
        /// before the connection closes, so a handler never shuts down a reused descriptor.
        var socket: Int32 = -1
        /// The call whose command is on the socket now.
        var running: RedisCallCancellation?
        /// A handler shut the socket down: the connection is finished, reconnect before reuse.
        var shutDown = false
    }

    init(url: RedisURL, options: RedisClientOptions, name: String) {
        self.url = url
        self.options = options
        self.thread = DedicatedThread(name: name)
    }

    func close() {
        thread.submit { [self] in
            dropConnection()
        }
        thread.stop()
    }

    /// Cancels `call`: a call still waiting for the thread or a connection never sends its
    /// command, and one on the socket has its read broken at once by shutting the socket down.
    /// The slot then reconnects on next use.
    func interrupt(_ call: RedisCallCancellation) {
        interruption.withLock { state in
            call.request()
            if state.running === call, state.socket >= 0 {
                _ = Glibc.shutdown(state.socket, Int32(SHUT_RDWR))
                state.shutDown = true
            }
        }
    }

    /// Opens the connection now, once, without retrying: for failing fast at start-up.
    func connectOnce() async throws(RedisError) {
        try await thread.run { [self] () throws(RedisError) in
            _ = try currentConnection()
        }
    }

    /// Runs `body` with a live connection on the slot's thread.
    ///
    /// A body that never reached the server (no connection, `LOADING` while Redis replays its AOF)
    /// is retried within the reconnect window. A connection that broke mid-command is retried only
    /// when `idempotent`, because the command may have run.
    ///
    /// With `cancellation`, `interrupt(_:)` ends the call: it throws `.cancelled` if it had not
    /// sent its command yet, or `.connectionLost` from the broken read.
    func perform<T: Sendable>(
        idempotent: Bool,
        cancellation: RedisCallCancellation? = nil,
        expectsIdle: Bool = true,
        _ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        try await thread.run { [self] () throws(RedisError) -> T in
            var backoff = ReconnectBackoff(options)
            while true {
                do throws(RedisError) {
                    if cancellation?.isRequested == true { throw .cancelled }
                    let connection = try currentConnection(expectsIdle: expectsIdle)
                    guard let cancellation else { return try body(connection) }
                    try start(cancellation)
                    defer { interruption.withLock { $0.running = nil } }
                    return try body(connection)
                } catch {
                    if cancellation?.isRequested == true {
                        if case .connectionLost = error { dropConnection() }
                        throw error
                    }
                    let retry: Bool
                    switch error {
                    case .connectionLost:
                        dropConnection()
                        retry = idempotent
                    case .connectionFailed:
                        retry = true
                    case .serverError(let code, _) where code == "LOADING" || code == "TRYAGAIN":
                        retry = true
                    default:
                        retry = false
                    }
                    guard retry, let wait = backoff.next() else { throw error }
                    Thread.sleep(forTimeInterval: wait.seconds)
                }
            }
        }
    }

    /// Marks `call` as the one on the socket, unless it was cancelled already.
    private func start(_ call: RedisCallCancellation) throws(RedisError) {
        let cancelled = interruption.withLock { state in
            if call.isRequested { return true }
            state.running = call
            return false
        }
        if cancelled { throw .cancelled }
    }

    private func currentConnection(expectsIdle: Bool = true) throws(RedisError) -> RedisConnection {
        let shutDown = interruption.withLock { $0.shutDown }
        // A connection that is readable while idle was closed by the server (a restart, a kill).
        // Blocking ones too, or the next blocking read fails in flight instead of reconnecting;
        // but not one that waits for a subscription's next message, which is readable by design.
        if !shutDown, let connection, connection.isOpen, !(expectsIdle && connection.looksStale) {
            return connection
        }
        dropConnection()
        let fresh = try RedisConnection.open(
            url,
            connectTimeout: options.connectTimeout,
            commandTimeout: nil
        )
        connection = fresh
        interruption.withLock { $0.socket = fresh.fileDescriptor }
        return fresh
    }

    private func dropConnection() {
        interruption.withLock { state in
            state.socket = -1
            state.shutDown = false
        }
        connection?.close()
        connection = nil
    }
}
