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
    public var poolSize: Int = 8

    public init() {}
}

/// A connection and the one thread allowed to touch it. Reconnects lazily, with backoff.
final class RedisConnectionSlot: @unchecked Sendable {
    let url: RedisURL
    let options: RedisClientOptions
    private let blocking: Bool
    private let thread: DedicatedThread
    /// Only touched on `thread`.
    private var connection: RedisConnection?
    /// Written on `thread`, read from cancellation handlers to `shutdown(2)` the socket.
    private let socket = Mutex<Int32>(-1)

    init(url: RedisURL, options: RedisClientOptions, blocking: Bool, name: String) {
        self.url = url
        self.options = options
        self.blocking = blocking
        self.thread = DedicatedThread(name: name)
    }

    func close() {
        thread.submit { [self] in
            connection?.close()
            connection = nil
            socket.withLock { $0 = -1 }
        }
        thread.stop()
    }

    /// Breaks a blocking read in progress; the slot reconnects on next use.
    func interrupt() {
        socket.withLock { fd in
            if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
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
    func perform<T: Sendable>(
        idempotent: Bool,
        _ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> T
    ) async throws(RedisError) -> T {
        try await thread.run { [self] () throws(RedisError) -> T in
            let deadline = ContinuousClock.now + options.reconnectWindow
            var backoff = options.initialBackoff
            while true {
                do throws(RedisError) {
                    let connection = try currentConnection()
                    return try body(connection)
                } catch {
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
                    guard retry, ContinuousClock.now + backoff < deadline else { throw error }
                    let jittered = backoff * Double.random(in: 0.5...1.0)
                    Thread.sleep(forTimeInterval: jittered.seconds)
                    backoff = min(backoff * 2, options.maximumBackoff)
                }
            }
        }
    }

    private func currentConnection() throws(RedisError) -> RedisConnection {
        if let connection, connection.isOpen, blocking || !connection.looksStale {
            return connection
        }
        dropConnection()
        let fresh = try RedisConnection.open(
            url,
            connectTimeout: options.connectTimeout,
            commandTimeout: blocking ? nil : options.commandTimeout
        )
        connection = fresh
        socket.withLock { $0 = fresh.fileDescriptor }
        return fresh
    }

    private func dropConnection() {
        connection?.close()
        connection = nil
        socket.withLock { $0 = -1 }
    }
}
