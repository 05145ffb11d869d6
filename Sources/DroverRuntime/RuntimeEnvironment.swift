import Crypto
import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverEgress
import DroverFileStore
import DroverHands
import DroverRedis
import DroverSessionLog
import DroverTools
import Foundation
import Logging

/// The Redis a command talks to: `DROVER_REDIS_URL`, or the embedded server in the data directory.
public final class RuntimeEnvironment: Sendable {
    public let configuration: DroverConfiguration
    public let redis: RedisClient
    public let embedded: EmbeddedRedis?
    private let databaseBox = Locked<MirrorDatabase?>(nil)
    /// Starts the embedded server again if it dies while this command runs.
    private let supervisor: Task<Void, Never>?

    private init(configuration: DroverConfiguration, redis: RedisClient, embedded: EmbeddedRedis?) {
        self.configuration = configuration
        self.redis = redis
        self.embedded = embedded
        supervisor = embedded.map { server in
            Task {
                let logger = Logger(label: "drover.redis")
                await server.keepRunning { logger.warning("\($0)") }
            }
        }
    }

    /// The SQLite mirror at `DROVER_DB`, opened (and migrated) on first use.
    public func database() throws -> MirrorDatabase {
        try databaseBox.withLock { database in
            if let database { return database }
            let opened = try MirrorDatabase(path: configuration.databasePath.path)
            database = opened
            return opened
        }
    }

    /// Where sandboxes keep their workspaces: `DROVER_HANDS_DIR`, else `<data>/hands`.
    ///
    /// As root, sandboxes start as nobody, and bubblewrap (running as nobody) must reach the
    /// workspace to bind it; the data directory is private (0700) and often sits under /root.
    /// So as root the default is `/var/tmp/drover-hands/<hash of the data directory>`: on disk,
    /// kept across reboots, traversable but not listable, each workspace owned by nobody.
    public func handsRoot() throws -> URL {
        if let explicit = ProcessInfo.processInfo.environment["DROVER_HANDS_DIR"], !explicit.isEmpty {
            let url = URL(fileURLWithPath: explicit).standardizedFileURL
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
        let data = configuration.dataDirectory.standardizedFileURL
        guard getuid() == 0 else {
            let hands = data.appendingPathComponent("hands")
            try FileManager.default.createDirectory(at: hands, withIntermediateDirectories: true)
            return hands
        }
        let digest = SHA256.hash(data: Data(data.path.utf8)).prefix(6).lowercaseHex
        let base = URL(fileURLWithPath: "/var/tmp/drover-hands")
        let hands = base.appendingPathComponent(digest)
        try FileManager.default.createDirectory(at: hands, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        chmod(base.path, 0o711)
        chmod(hands.path, 0o711)
        return hands
    }

    /// How this process's egress proxy decides: the system resolver, and Drover's own endpoints
    /// (a TCP Redis, the API at `apiAddress`, else `DROVER_API_ADDR`, else 127.0.0.1:8787) refused
    /// to every sandbox, whatever its environment allows.
    public func egressGate(apiAddress: String? = nil) throws -> EgressGate {
        var endpoints: [(host: String, port: Int)] = []
        if let text = configuration.redisURL, let url = try? RedisURL(parsing: text), case .tcp(let host, let port) = url.endpoint {
            endpoints.append((host, port))
        }
        if let api = try? DroverConfiguration.hostAndPort(apiAddress ?? DroverConfiguration.apiAddress()) { endpoints.append(api) }
        return EgressGate(protected: EgressGate.addresses(of: endpoints), internalHosts: try Self.internalHosts())
    }

    /// `DROVER_INTERNAL_HOSTS`: comma-separated names or IPv4 addresses on a private network or
    /// loopback that agents' MCP servers and git repositories may be on.
    static func internalHosts(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [HostPattern] {
        var hosts: [HostPattern] = []
        for (index, entry) in (environment["DROVER_INTERNAL_HOSTS"] ?? "").split(separator: ",").enumerated() {
            let text = entry.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { continue }
            let host: HostPattern
            do {
                host = try HostPattern(text)
            } catch {
                throw FieldError(
                    field: "DROVER_INTERNAL_HOSTS[\(index)]", message: error.message, fix: "list host names or IPv4 addresses, separated by commas")
            }
            guard !host.isWildcard else {
                throw FieldError(
                    field: "DROVER_INTERNAL_HOSTS[\(index)]", message: "'\(text)' is a wildcard; internal hosts are named exactly",
                    fix: "list each host by its full name")
            }
            hosts.append(host)
        }
        return hosts
    }

    /// The installation's egress authority, kept in `<data>/egress-authority` (made on first
    /// use). `DROVER_EGRESS_TRUST` lists PEM files (separated by `:`) of further authorities that
    /// destinations may be signed by, such as an organisation's internal CA.
    public func egressAuthority() throws -> EgressAuthority {
        let extra = (ProcessInfo.processInfo.environment["DROVER_EGRESS_TRUST"] ?? "").split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        return try EgressAuthority.load(directory: configuration.dataDirectory.appendingPathComponent("egress-authority"), extraRoots: extra)
    }

    /// The vault keyring, read afresh at each use, so that a rotated key counts at once.
    public var vaultKeyring: @Sendable () throws -> VaultKeyring {
        let directory = configuration.dataDirectory
        return { try VaultKeyring.load(dataDirectory: directory) }
    }

    /// `web_fetch` under `gate`'s rules, and `web_search` at `DROVER_WEB_SEARCH_URL` with the
    /// session's token for it (`serverTokens`).
    public func webTools(gate: EgressGate, bearer: @escaping @Sendable (SessionID, String) async throws -> String?) throws -> WebTools {
        let url = ProcessInfo.processInfo.environment["DROVER_WEB_SEARCH_URL"].flatMap { $0.isEmpty ? nil : $0 }
        if let url {
            guard let components = URLComponents(string: url), ["http", "https"].contains(components.scheme?.lowercased() ?? ""),
                components.host?.isEmpty == false
            else {
                throw FieldError(
                    field: "DROVER_WEB_SEARCH_URL", message: "'\(url.prefix(200))' is not an http or https URL",
                    fix: "give a SearXNG-style JSON endpoint such as https://search.example.org/search")
            }
        }
        return WebTools(gate: gate, searchURL: url, bearer: bearer)
    }

    /// How this process's sandboxes are pooled and reach the network: `gate` (see `egressGate`)
    /// and the egress authority.
    public func sandboxPoolSettings(gate: EgressGate) throws -> SandboxPoolSettings {
        var settings = SandboxPoolSettings()
        settings.egressGate = gate
        settings.egressAuthority = try egressAuthority()
        settings.sessionFiles = try sessionFiles()
        return settings
    }

    /// Sessions' files in the file store (blobs in this runtime's Redis), under the limits of
    /// `DROVER_FILE_STORE_*`: how file resources, job files and job outputs cross hosts.
    public func sessionFiles() throws -> SessionFiles {
        SessionFiles(store: FileStore(redis: redis, limits: try FileStoreLimits.fromEnvironment()))
    }

    /// Where this process's workers read sessions' credentials and repositories: this host's
    /// SQLite file for the sessions it holds, the control plane's copy in Redis for the others.
    public func workerControlPlane() throws -> WorkerControlPlane {
        WorkerControlPlane(store: ControlPlaneStore(database: try database()), replica: ControlPlaneReplica(redis: redis), keyring: vaultKeyring)
    }

    /// A session's `environment_variable` credentials, opened from its vaults for the egress
    /// proxy (`AgentToolset.credentials`). The vault key is read only when there is one to open.
    public func credentialSource() -> @Sendable (SessionID) async throws -> [EgressSecret] {
        let control = Result { try self.workerControlPlane() }
        return { session in
            try await control.get().variableCredentials(session: session).map { credential in
                EgressSecret(
                    credentialID: credential.id, vaultID: credential.vault, variable: credential.variable, value: credential.secret,
                    hosts: try credential.hosts.map { try $0.map { try HostPattern($0) } }, inHeaders: credential.inHeaders,
                    inBody: credential.inBody)
            }
        }
    }

    /// A session's git repositories (`github_repository` resources), with their tokens opened
    /// for the egress proxy (`AgentToolset.repositories`).
    public func repositorySource() -> @Sendable (SessionID) async throws -> [SandboxRepository] {
        let control = Result { try self.workerControlPlane() }
        return { session in
            try await control.get().repositories(session: session).map {
                SandboxRepository(id: $0.id, url: $0.url, branch: $0.branch, commit: $0.commit, path: $0.path, token: $0.token)
            }
        }
    }

    /// A session's token for an MCP server (or the web search backend) URL, from the
    /// `static_bearer` or `mcp_oauth` credentials of its vaults, refreshed when due at token
    /// endpoints `gate` allows. One per process, so that a credential is refreshed once.
    public func serverTokens(gate: EgressGate) throws -> @Sendable (SessionID, String) async throws -> String? {
        let tokens = ServerTokens(control: try workerControlPlane(), gate: gate)
        return { session, url in try await tokens.token(session: session, serverURL: url) }
    }

    /// Writes what a sandbox asked of the egress proxy into the session's counts in SQLite
    /// (`drover sessions show`). A failed write is reported, never the call's failure.
    public func egressRecorder() -> @Sendable (EgressUsage) async -> Void {
        let database = try? database()
        let logger = Logger(label: "drover.egress")
        return { usage in
            guard let database, let session = usage.session else { return }
            let rows = usage.entries.map { key, counts in
                MirrorDatabase.EgressUsageRow(
                    host: key.host, port: key.port, verdict: key.verdict, requests: counts.requests, bytesSent: counts.bytesSent,
                    bytesReceived: counts.bytesReceived)
            }
            do {
                try await database.recordEgress(session: session.rawValue, rows)
            } catch {
                logger.warning("egress counts for \(session.rawValue) were not written: \(error)")
            }
        }
    }

    public var sessionLog: SessionLog {
        get throws { SessionLog(redis: redis, database: try database()) }
    }

    /// Connects, starting the embedded server when no URL is configured. `announce` prints which
    /// Redis is in use on standard error, so that it never mixes with JSON on standard output.
    /// `exitOnSignal`: Ctrl-C and SIGTERM stop the embedded server and exit. Long-running roles
    /// pass false and shut down through their service group instead.
    public static func open(
        poolSize: Int? = nil, announce: Bool = true, exitOnSignal: Bool = true, startup: RedisStartup = .failFast
    ) async throws -> RuntimeEnvironment {
        let configuration = try DroverConfiguration.fromEnvironment()
        var options = RedisClientOptions()
        options.poolSize = poolSize ?? configuration.redisPoolSize
        if let text = configuration.redisURL {
            let url = try RedisURL(parsing: text)
            let redis = try await startup.connect(url, options: options)
            return RuntimeEnvironment(configuration: configuration, redis: redis, embedded: nil)
        }
        if configuration.dataDirectoryOrigin == .new, !FileManager.default.fileExists(atPath: configuration.dataDirectory.path) {
            note(
                "drover: no .drover directory here or above; creating \(configuration.dataDirectory.path) for Redis and SQLite (set DROVER_DATA_DIR to keep them elsewhere)"
            )
        }
        let embedded = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: configuration.dataDirectory))
        if announce {
            let role = embedded.isOwner ? "started" : "sharing"
            note("drover: \(role) embedded redis-server at \(embedded.socketPath) (AOF on; set DROVER_REDIS_URL to use your own)")
        }
        let redis = try await RedisClient.connect(embedded.url, options: options)
        let environment = RuntimeEnvironment(configuration: configuration, redis: redis, embedded: embedded)
        if exitOnSignal { SignalCleanup.shared.register(environment) }
        return environment
    }

    public func close() async {
        supervisor?.cancel()
        await supervisor?.value
        redis.close()
        await embedded?.stop()
    }
}

/// Ctrl-C or SIGTERM during a command stops the embedded server before the process exits.
public final class SignalCleanup: @unchecked Sendable {
    public static let shared = SignalCleanup()
    private var signals: InterruptSignals?
    private var environments: [RuntimeEnvironment] = []
    private let lock = NSLock()

    public func register(_ environment: RuntimeEnvironment) {
        lock.withLock {
            environments.append(environment)
            guard signals == nil else { return }
            // Every signal, first or not, closes what is open and exits.
            let cleanUp: @Sendable (Int32) -> Void = { [self] signalNumber in
                let pending = lock.withLock { environments }
                Task {
                    for environment in pending { await environment.close() }
                    exit(128 + signalNumber)
                }
            }
            signals = InterruptSignals(first: cleanUp, again: cleanUp)
        }
    }
}

public func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Runs `body` against the configured Redis and always closes it.
public func withRuntime<T>(
    poolSize: Int? = nil, announce: Bool = true, exitOnSignal: Bool = true, startup: RedisStartup = .failFast,
    _ body: (RuntimeEnvironment) async throws -> T
) async throws -> T {
    try await reportingErrors {
        let environment = try await RuntimeEnvironment.open(
            poolSize: poolSize, announce: announce, exitOnSignal: exitOnSignal, startup: startup)
        do {
            let result = try await body(environment)
            await environment.close()
            return result
        } catch {
            await environment.close()
            throw error
        }
    }
}
