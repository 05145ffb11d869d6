import DroverCore
import DroverRedis
import Foundation

/// A real `redis-server` for a test: its own temporary directory and unix socket, AOF on, and
/// stopped (and its directory removed) by `shutdown()`.
public final class RedisServerFixture: Sendable {
    public let directory: URL
    private let server: SendableServer

    private final class SendableServer: @unchecked Sendable {
        var current: EmbeddedRedis
        init(_ server: EmbeddedRedis) { current = server }
    }

    public var url: RedisURL { server.current.url }
    public var options: EmbeddedRedis.Options { server.current.options }

    private init(directory: URL, server: EmbeddedRedis) {
        self.directory = directory
        self.server = SendableServer(server)
    }

    public static func start(password: String? = nil, tcpPort: Int = 0, appendFsync: String = "everysec") async throws -> RedisServerFixture {
        let directory = scratchRoot.appendingPathComponent("drover-test-\(Identifier.make(prefix: "r").suffix(12))")
        var options = EmbeddedRedis.Options(dataDirectory: directory)
        options.password = password
        options.tcpPort = tcpPort
        options.appendFsync = appendFsync
        // A generous deadline, not a timing claim: a restart may land while another suite's fork
        // bomb holds both cores.
        options.startTimeout = .seconds(60)
        let server = try await EmbeddedRedis.start(options)
        if let pid = server.processIdentifier { StallWatch.watch(pid: pid, name: "redis-server") }
        return RedisServerFixture(directory: directory, server: server)
    }

    public func client(poolSize: Int = 4, reconnectWindow: Duration = .seconds(15)) async throws -> RedisClient {
        var options = RedisClientOptions()
        options.poolSize = poolSize
        options.reconnectWindow = reconnectWindow
        // A generous deadline, not the production 30 s: no test is about a stalled server, and
        // a loaded machine has stalled one for longer than that.
        options.commandTimeout = .seconds(120)
        return try await RedisClient.connect(url, options: options)
    }

    /// Stops the server cleanly (SIGTERM: the AOF is flushed) and starts it again on the same
    /// files and socket.
    public func restart(downtime: Duration = .milliseconds(200)) async throws {
        await server.current.stop(force: true)
        try await Task.sleep(for: downtime)
        server.current = try await EmbeddedRedis.start(options)
        if let pid = server.current.processIdentifier { StallWatch.watch(pid: pid, name: "redis-server") }
    }

    /// Kills the server with SIGKILL, as a crash would; `startAgain()` brings it back.
    public func crash() async {
        await server.current.crash()
    }

    public func startAgain() async throws {
        await server.current.stop(force: true)
        server.current = try await EmbeddedRedis.start(options)
        if let pid = server.current.processIdentifier { StallWatch.watch(pid: pid, name: "redis-server") }
    }

    public var processIdentifier: Int32? { server.current.processIdentifier }

    /// The server's view of itself, from a connection of its own: clients, command counts, the
    /// slow log and load. For a test's failure message.
    public func diagnostics() async -> String {
        guard let client = try? await RedisClient.connect(url, options: RedisClientOptions()) else { return "(the server does not answer)" }
        defer { client.close() }
        var parts: [String] = []
        for command in [
            ["INFO", "clients"], ["INFO", "cpu"], ["INFO", "commandstats"], ["INFO", "stats"], ["CLIENT", "LIST"], ["SLOWLOG", "GET", "10"],
        ] {
            let reply = try? await client.send(command)
            parts.append("\(command.joined(separator: " ")):\n\(reply.map { $0.string ?? "\($0)" } ?? "(no reply)")")
        }
        // A stall of the whole machine (the host pausing it) shows as steal time, the 8th number.
        for file in ["/proc/loadavg", "/proc/stat"] {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            parts.append("\(file): \(text.split(separator: "\n").first ?? "")")
        }
        parts.append("redis-server pid: \(processIdentifier.map(String.init) ?? "?") (a socket whose peer pid is another was not talking to it)")
        parts.append(StallWatch.report())
        return parts.joined(separator: "\n")
    }

    public func shutdown() async {
        await server.current.stop(force: true)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Where test servers keep their files: memory (`/dev/shm`) when the machine has it. The suite
/// also runs sandboxes that flood the disk on purpose, and behind that writeback a server on disk
/// once took over 30 s to answer one command. A crash test still replays the AOF, which a killed
/// process does not lose from memory.
let scratchRoot: URL = {
    let shm = URL(fileURLWithPath: "/dev/shm")
    if access(shm.path, W_OK) == 0 { return shm }
    return URL(fileURLWithPath: NSTemporaryDirectory())
}()

/// A unique queue name per test, so tests can share a server.
public func uniqueQueueName(_ label: String = "test") -> String {
    "\(label)-\(Identifier.make(prefix: "q").suffix(10).lowercased())"
}

/// Runs `body` with a fresh server, and stops the server however `body` ends.
public func withRedisServer<T>(
    password: String? = nil,
    appendFsync: String = "everysec",
    _ body: (RedisServerFixture) async throws -> T
) async throws -> T {
    StallWatch.start()
    let server = try await RedisServerFixture.start(password: password, appendFsync: appendFsync)
    do {
        let result = try await body(server)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

/// Runs `body` with a fresh server and a client of it; both are closed afterwards.
public func withRedisClient<T>(
    poolSize: Int = 4,
    appendFsync: String = "everysec",
    _ body: (RedisClient, RedisServerFixture) async throws -> T
) async throws -> T {
    try await withRedisServer(appendFsync: appendFsync) { server in
        let client = try await server.client(poolSize: poolSize)
        defer { client.close() }
        do {
            return try await body(client, server)
        } catch {
            // A command that got no reply on a loaded machine: what the server was doing says
            // whether it was slow, blocked, or never sent the command.
            if error is RedisError || (error as? CarriesRedisError)?.redisError != nil {
                print("redis fixture: \(error)\n\(await server.diagnostics())")
            }
            throw error
        }
    }
}

/// A fresh SQLite file in a directory of its own.
public func temporaryDatabasePath() -> String {
    scratchDirectory("db").appendingPathComponent("drover.db").path
}
