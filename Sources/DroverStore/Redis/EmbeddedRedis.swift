import Crypto
import DroverCore
import Foundation
import Synchronization

public struct EmbeddedRedisError: ActionableError {
    public let message: String
    public let field: String?
    public let fix: String?

    public var description: String {
        message + (fix.map { ". Fix: \($0)" } ?? "")
    }

    static let notInstalled = EmbeddedRedisError(
        message: "redis-server was not found on PATH, and DROVER_REDIS_URL is not set",
        field: "DROVER_REDIS_URL",
        fix: "install it with `apt-get install -y redis-server` (Debian package redis-server), or set DROVER_REDIS_URL to a running server"
    )
}

/// A private `redis-server` child process on a unix socket in Drover's data directory, with AOF
/// on, used when `DROVER_REDIS_URL` is unset.
///
/// Several `drover` processes may share one data directory. The first takes an `flock` on
/// `redis.lock` and owns the server; the others connect as guests. The kernel drops the lock when
/// its owner dies, even by `kill -9`, so the next `drover` adopts a server left behind instead of
/// starting a second one on the same files.
public final class EmbeddedRedis: Sendable {
    public struct Options: Sendable {
        public var dataDirectory: URL
        /// Also listen on 127.0.0.1 at this port (0: unix socket only).
        public var tcpPort: Int = 0
        public var password: String?
        /// `always` loses nothing on power loss but costs throughput; `everysec` (the default)
        /// loses at most a second of writes on a crash of the machine, none on a clean stop.
        public var appendFsync: String = "everysec"
        public var startTimeout: Duration = .seconds(15)

        public init(dataDirectory: URL) {
            self.dataDirectory = dataDirectory
        }
    }

    public let options: Options
    public let url: RedisURL
    public let socketPath: String
    /// False when another process owns the server and this one only connects to it.
    public let isOwner: Bool
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var process: ChildProcess?
        var lockDescriptor: Int32
    }

    private init(options: Options, url: RedisURL, socketPath: String, isOwner: Bool, process: ChildProcess?, lockDescriptor: Int32) {
        self.options = options
        self.url = url
        self.socketPath = socketPath
        self.isOwner = isOwner
        self.state = Mutex(State(process: process, lockDescriptor: lockDescriptor))
    }

    public static func start(_ options: Options) async throws -> EmbeddedRedis {
        let directory = options.dataDirectory.standardizedFileURL
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw EmbeddedRedisError(
                message: "cannot create the data directory \(directory.path): \(error.localizedDescription)",
                field: "DROVER_DATA_DIR",
                fix: "point DROVER_DATA_DIR at a writable directory"
            )
        }
        let socketPath = try socketPath(for: directory)
        var url = RedisURL(endpoint: .unix(path: socketPath))
        url.password = options.password
        if options.tcpPort != 0 {
            url = RedisURL(endpoint: .tcp(host: "127.0.0.1", port: options.tcpPort), password: options.password)
        }

        let lockPath = directory.appendingPathComponent("redis.lock").path
        let lockDescriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockDescriptor >= 0 else {
            throw EmbeddedRedisError(
                message: "cannot open \(lockPath): \(String(cString: strerror(errno)))",
                field: "DROVER_DATA_DIR", fix: "point DROVER_DATA_DIR at a writable directory"
            )
        }
        let owns: Bool
        do {
            owns = try await lockOrFindServer(lockDescriptor, url: url, timeout: options.startTimeout)
        } catch {
            close(lockDescriptor)
            throw error
        }
        if !owns {
            close(lockDescriptor)
            return EmbeddedRedis(options: options, url: url, socketPath: socketPath, isOwner: false, process: nil, lockDescriptor: -1)
        }

        // A server whose owner died keeps serving on the socket: adopt it.
        if ping(url) {
            return EmbeddedRedis(options: options, url: url, socketPath: socketPath, isOwner: true, process: nil, lockDescriptor: lockDescriptor)
        }
        unlink(socketPath)

        guard let executable = findExecutable("redis-server") else {
            close(lockDescriptor)
            throw EmbeddedRedisError.notInstalled
        }
        let logPath = directory.appendingPathComponent("redis.log").path
        var arguments = [
            "--port", String(options.tcpPort),
            "--bind", "127.0.0.1",
            "--unixsocket", socketPath,
            "--unixsocketperm", "700",
            "--dir", directory.path,
            "--appendonly", "yes",
            "--appendfsync", options.appendFsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", logPath,
            "--maxmemory-policy", "noeviction",
        ]
        if let password = options.password {
            arguments += ["--requirepass", password]
        }
        let process: ChildProcess
        do {
            process = try ChildProcess(executable: executable.path, arguments: arguments)
        } catch {
            close(lockDescriptor)
            throw EmbeddedRedisError(message: error.description, field: nil, fix: nil)
        }
        let server = EmbeddedRedis(options: options, url: url, socketPath: socketPath, isOwner: true, process: process, lockDescriptor: lockDescriptor)
        do {
            try await waitUntilReady(url: url, process: process, logPath: logPath, timeout: options.startTimeout)
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    /// The process id of the server this process started, if it started one.
    public var processIdentifier: Int32? {
        state.withLock { $0.process?.pid }
    }

    /// Stops the server if this process owns it and no other process is connected. A server that
    /// another `drover` still uses is left running for that process (or the next one) to adopt.
    /// `force` stops it regardless, for tests.
    public func stop(force: Bool = false) async {
        guard isOwner else { return }
        let (process, lockDescriptor) = state.withLock { state in
            let taken = (state.process, state.lockDescriptor)
            state.process = nil
            state.lockDescriptor = -1
            return taken
        }
        guard lockDescriptor >= 0 || process != nil else { return }
        defer { if lockDescriptor >= 0 { close(lockDescriptor) } }

        if let connection = try? RedisConnection.open(url, connectTimeout: .seconds(1), commandTimeout: .seconds(2)) {
            let ownName = "name=\(RedisConnection.processClientName) "
            let others = ((try? connection.command(["CLIENT", "LIST"]))?.string ?? "")
                .split(separator: "\n")
                .filter { !$0.contains(ownName) }
                .count
            if others > 0 && !force {
                // Another drover is connected: leave the server up. The next owner adopts it.
                return
            }
            if process == nil {
                // Adopted: ask it to shut down (it writes and syncs the AOF first).
                _ = try? connection.command(["SHUTDOWN"])
                connection.close()
                return
            }
            connection.close()
        }
        guard let process else { return }
        await process.terminate()   // SIGTERM: redis syncs the AOF and exits
    }

    /// Ends the server with SIGKILL, as a crash would. For tests.
    public func crash() async {
        await state.withLock { $0.process }?.kill()
    }

    // MARK: Helpers

    /// Unix socket paths are limited to 107 bytes; deep data directories get one under /tmp.
    static func socketPath(for directory: URL) throws -> String {
        let preferred = directory.appendingPathComponent("redis.sock").path
        if preferred.utf8.count <= 100 { return preferred }
        let digest = Insecure.SHA1.hash(data: Array(directory.path.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        let fallback = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-\(digest)")
        try FileManager.default.createDirectory(at: fallback, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return fallback.appendingPathComponent("redis.sock").path
    }

    static func findExecutable(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        for directory in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    private static func ping(_ url: RedisURL) -> Bool {
        RedisConnection.answersPing(url, connectTimeout: .milliseconds(500), commandTimeout: .seconds(2))
    }

    /// Takes the data directory's lock (true: this process starts or adopts the server), or
    /// finds the server of the process holding it (false). A lock held but no server answering is
    /// retried until `timeout`: a lock can be held for a moment by no owner at all. Another thread
    /// spawning a child copies every descriptor, this one included, into the child until it execs,
    /// and a lock lives as long as any copy of its descriptor.
    private static func lockOrFindServer(_ descriptor: Int32, url: RedisURL, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return true }
            if ping(url) { return false }
            guard ContinuousClock.now < deadline else {
                throw EmbeddedRedisError(
                    message: "another process holds the embedded redis-server's lock, but no server answers on \(url) within \(timeout)",
                    field: "DROVER_DATA_DIR", fix: "stop the other drover using this data directory, or point DROVER_DATA_DIR elsewhere")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private static func waitUntilReady(url: RedisURL, process: ChildProcess?, logPath: String?, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let process, let status = process.exitStatus {
                throw EmbeddedRedisError(
                    message: "redis-server exited during start-up (wait status \(status)). Its log says:\n\(logTail(logPath))",
                    field: nil,
                    fix: "read the log above; a corrupt AOF can be checked with `redis-check-aof`"
                )
            }
            if ping(url) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw EmbeddedRedisError(
            message: "redis-server did not answer on \(url) within \(timeout). Its log says:\n\(logTail(logPath))",
            field: nil, fix: nil
        )
    }

    private static func logTail(_ path: String?) -> String {
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").suffix(8).joined(separator: "\n")
    }
}
