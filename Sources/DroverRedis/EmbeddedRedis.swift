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
///
/// `keepRunning` supervises the server for long-running roles: whichever process holds the lock
/// starts it again on its AOF when it dies, and a guest whose owner is gone takes the lock over.
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
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var process: ChildProcess?
        /// The data directory's lock while this process owns the server, else -1.
        var lockDescriptor: Int32
        /// Set by `stop`: nothing starts the server again afterwards.
        var stopped = false
    }

    private var directory: URL { options.dataDirectory.standardizedFileURL }

    private init(options: Options, url: RedisURL, socketPath: String, process: ChildProcess?, lockDescriptor: Int32) {
        self.options = options
        self.url = url
        self.socketPath = socketPath
        self.state = Mutex(State(process: process, lockDescriptor: lockDescriptor))
    }

    /// False when another process owns the server and this one only connects to it. A guest
    /// becomes the owner when it takes over a server whose owner is gone (see `keepRunning`).
    public var isOwner: Bool {
        state.withLock { $0.lockDescriptor >= 0 }
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

        let lockDescriptor: Int32
        do {
            lockDescriptor = try openLock(directory)
        } catch {
            throw EmbeddedRedisError(message: error.message, field: "DROVER_DATA_DIR", fix: "point DROVER_DATA_DIR at a writable directory")
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
            return EmbeddedRedis(options: options, url: url, socketPath: socketPath, process: nil, lockDescriptor: -1)
        }

        // A server whose owner died keeps serving on the socket: adopt it.
        if ping(url) {
            return EmbeddedRedis(options: options, url: url, socketPath: socketPath, process: nil, lockDescriptor: lockDescriptor)
        }
        let process: ChildProcess
        do {
            process = try launch(options, socketPath: socketPath)
        } catch {
            close(lockDescriptor)
            throw error
        }
        let server = EmbeddedRedis(options: options, url: url, socketPath: socketPath, process: process, lockDescriptor: lockDescriptor)
        do {
            try await waitUntilReady(url: url, process: process, logPath: logPath(directory), timeout: options.startTimeout)
        } catch {
            await server.stop()
            throw error
        }
        return server
    }

    /// Starts `redis-server` on the data directory's files and socket. The caller holds the lock.
    private static func launch(_ options: Options, socketPath: String) throws(EmbeddedRedisError) -> ChildProcess {
        let directory = options.dataDirectory.standardizedFileURL
        unlink(socketPath)
        guard let executable = findExecutable("redis-server") else { throw EmbeddedRedisError.notInstalled }
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
            "--logfile", logPath(directory),
            "--maxmemory-policy", "noeviction",
        ]
        if let password = options.password {
            arguments += ["--requirepass", password]
        }
        do {
            return try ChildProcess(executable: executable.path, arguments: arguments)
        } catch {
            throw EmbeddedRedisError(message: error.description, field: nil, fix: nil)
        }
    }

    /// Opens (creating it) the data directory's `redis.lock`, whose `flock` marks the owner.
    private static func openLock(_ directory: URL) throws(EmbeddedRedisError) -> Int32 {
        let path = directory.appendingPathComponent("redis.lock").path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw EmbeddedRedisError(message: "cannot open \(path): \(String(cString: strerror(errno)))", field: nil, fix: nil)
        }
        return descriptor
    }

    private static func logPath(_ directory: URL) -> String {
        directory.appendingPathComponent("redis.log").path
    }

    /// The process id of the server this process started, if it started one.
    public var processIdentifier: Int32? {
        state.withLock { $0.process?.pid }
    }

    /// Stops the server if this process owns it and no other process is connected. A server that
    /// another `drover` still uses is left running for that process (or the next one) to adopt.
    /// `force` stops it regardless, for tests.
    public func stop(force: Bool = false) async {
        let (process, lockDescriptor) = state.withLock { state in
            let taken = (state.process, state.lockDescriptor)
            state.stopped = true
            state.process = nil
            state.lockDescriptor = -1
            return taken
        }
        // A guest leaves the server to its owner.
        guard lockDescriptor >= 0 else { return }
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
        await process.terminate()  // SIGTERM: redis syncs the AOF and exits
    }

    /// Ends the server with SIGKILL, as a crash would. For tests.
    public func crash() async {
        await state.withLock { $0.process }?.kill()
    }

    // MARK: Supervision

    /// What one look at the server found, and did.
    public enum Check: Equatable, Sendable {
        /// Its process is alive (it may still be loading its AOF).
        case running
        /// It had died, and this process started it again.
        case restarted(previous: String, pid: Int32)
        /// It is down and another live process holds the lock: that one starts it.
        case ownedElsewhere
        /// It is down and could not be started.
        case failed(String)
        case stopped
    }

    /// Keeps the server up while the calling task runs: every `interval`, starts it again on its
    /// AOF if it has died. A server that dies again at once is retried with a doubling pause, up
    /// to 30 s. `report` hears of each restart and failure, and of recovery after a failure.
    public func keepRunning(checkingEvery interval: Duration = .milliseconds(500), report: @Sendable (String) -> Void) async {
        var pause = interval
        var failing = false
        while !Task.isCancelled {
            do { try await Task.sleep(for: pause) } catch { return }
            switch checkAndRevive() {
            case .running, .ownedElsewhere:
                // A full connection only while recovering: the socket check above is enough otherwise.
                guard failing || pause != interval else { continue }
                if RedisConnection.answersPing(url, connectTimeout: .milliseconds(500), commandTimeout: .seconds(2)) {
                    if failing { report("redis-server at \(socketPath) answers again") }
                    failing = false
                    pause = interval
                }
            case .restarted(let previous, let pid):
                report("redis-server at \(socketPath) \(previous); started it again (pid \(pid)) on its AOF in \(directory.path)")
                pause = min(pause * 2, .seconds(30))
            case .failed(let reason):
                if !failing { report("redis-server at \(socketPath) is down and cannot be started: \(reason). Retrying with backoff up to 30 s") }
                failing = true
                pause = min(pause * 2, .seconds(30))
            case .stopped:
                return
            }
        }
    }

    /// Looks at the server once and starts it again if it has died and no other process owns it.
    /// Runs under the state's lock, so a `stop` meanwhile waits and nothing starts after it.
    public func checkAndRevive() -> Check {
        state.withLock { state -> Check in
            if state.stopped { return .stopped }
            var previous = "was gone"
            if let process = state.process {
                guard let status = process.exitStatus else { return .running }
                previous = "(pid \(process.pid)) " + Self.describe(waitStatus: status)
                state.process = nil
            } else if Self.accepts(socketPath) {
                return .running
            } else if state.lockDescriptor < 0 {
                // A guest: the owner is gone if its lock is free, and this process takes it over.
                let descriptor: Int32
                do { descriptor = try Self.openLock(directory) } catch { return .failed("\(error)") }
                guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                    close(descriptor)
                    return .ownedElsewhere
                }
                state.lockDescriptor = descriptor
                previous = "lost its owner and was gone"
                // The lock passed over while the old owner started a server: use that one.
                if Self.accepts(socketPath) { return .running }
            }
            do {
                let process = try Self.launch(options, socketPath: socketPath)
                state.process = process
                return .restarted(previous: previous, pid: process.pid)
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// Whether something listens on the unix socket; a server loading its AOF does.
    private static func accepts(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    private static func describe(waitStatus status: Int32) -> String {
        if status == -1 { return "exited" }
        let signal = status & 0x7f
        return signal == 0 ? "exited with code \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
    }

    // MARK: Helpers

    /// Unix socket paths are limited to 107 bytes; deep data directories get one under /tmp.
    static func socketPath(for directory: URL) throws -> String {
        let preferred = directory.appendingPathComponent("redis.sock").path
        if preferred.utf8.count <= 100 { return preferred }
        let digest = Insecure.SHA1.hash(data: Array(directory.path.utf8)).prefix(8).lowercaseHex
        let fallback = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-\(digest)")
        try FileManager.default.createDirectory(at: fallback, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return fallback.appendingPathComponent("redis.sock").path
    }

    public static func findExecutable(_ name: String) -> URL? {
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
