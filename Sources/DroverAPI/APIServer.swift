import Crypto
import DroverBrain
import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverFileStore
import DroverMetrics
import DroverQueue
import DroverRedis
import DroverSchedule
import DroverSelfHosted
import DroverSessionLog
import DroverWebhooks
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The Managed Agents HTTP API over Drover's session log, queue and control plane.
public final class APIServer: Sendable {
    /// Bodies over this answer 413. One event may be up to 1 MB; a request carries a few.
    public static let maximumBodyBytes = 4 << 20

    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 8787
        /// How often an idle event stream gets a `ping`, which is also how a dropped client is noticed.
        public var pingInterval: Duration = .seconds(15)
        /// Event streams one workspace may hold open; more answer 429.
        public var maxStreamsPerWorkspace = 1000
        /// Where uploaded files' bytes live (`<data dir>/files`); nil: the Files API answers 501.
        public var filesDirectory: URL?
        /// Uploads over this answer 413.
        public var maxFileBytes = 32 << 20
        /// What the file store takes (file resources reach workers through it, on any host).
        public var fileStoreLimits = FileStoreLimits()
        /// The key that seals vault secrets, read at each write so that a rotation
        /// (`drover vaults rotate-key`) takes effect at once; without it, `/v1/vaults` answers 501.
        public var vaultKeyring: (@Sendable () throws -> VaultKeyring)?
        /// Each workspace's request budget; nil: unlimited.
        public var rateLimit: (requestsPerSecond: Double, burst: Int)?
        /// Starts the batch of a job deployment's manual run (`POST /v1/deployments/{id}/run`);
        /// nil: such a run is refused.
        public var launchBatch: (@Sendable (DeploymentFirer.BatchLaunch) async throws -> Void)?
        /// The model this process's worker calls (`kind`: `scripted` or `anthropic`), shown in
        /// `/health`; nil when the process runs no worker.
        public var model: JSONValue?
        /// Served at `/metrics`; nil when this process keeps no metrics (`--no-metrics`).
        public var metrics: MetricsExposition?
        /// Where the API queues the webhooks of the changes it makes; nil queues none.
        public var webhooks: WebhookOutbox?
        /// The leases of self-hosted environments' work items.
        public var work = WorkQueue.Options()
        /// Where the one line per request goes.
        public var requestLogger = Logger(label: "drover.api.requests")
        public init() {}
    }

    let log: SessionLog
    let store: ControlPlaneStore
    let queue: TaskQueue
    var inbox: SessionInbox { SessionInbox(log: log, queue: queue) }
    /// Self-hosted environments' work queues.
    let work: WorkQueue
    let redis: RedisClient
    public let options: Options
    let localWorkspaceID: String
    /// Event streams open now per workspace, for the 429 limit, `/health` and the leak test.
    let openStreams = Locked<[String: Int]>([:])
    let limiter: RequestRateLimiter?
    /// One live tail per watched session, shared by its event streams.
    let hub: SessionEventHub
    /// Signs the console's CSRF tokens in local mode, where there is no key to sign them with.
    let consoleSecret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }

    public init(log: SessionLog, store: ControlPlaneStore, queue: TaskQueue, redis: RedisClient, options: Options, localWorkspaceID: String) {
        self.log = log
        self.store = store
        self.queue = queue
        self.redis = redis
        self.options = options
        self.localWorkspaceID = localWorkspaceID
        hub = SessionEventHub(log: log, redis: redis)
        work = WorkQueue(redis: redis, options: options.work)
        limiter = options.rateLimit.map { RequestRateLimiter(requestsPerSecond: $0.requestsPerSecond, burst: $0.burst) }
    }

    /// Parses `host:port` as in `DROVER_API_ADDR`.
    public static func address(_ text: String) throws -> (host: String, port: Int) {
        try DroverConfiguration.hostAndPort(text)
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Whether a request's `Host` (`localhost`, `127.x.y.z` or `[::1]`, with any port) names
    /// this machine's loopback: local mode answers no other, against DNS rebinding.
    static func isLoopbackAuthority(_ authority: String?) -> Bool {
        guard let authority else { return false }
        var host = authority.lowercased()
        if host.hasPrefix("[") {
            host = String(host.dropFirst().prefix { $0 != "]" })
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    public func router() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.middlewares.add(RequestLogMiddleware(logger: options.requestLogger))
        if options.metrics != nil { router.middlewares.add(MetricsMiddleware()) }
        router.middlewares.add(APIErrorMiddleware())
        router.middlewares.add(AuthenticationMiddleware(store: store, localWorkspaceID: localWorkspaceID))
        let consoleAccess = ConsoleAccess(store: store, localWorkspaceID: localWorkspaceID, localSecret: consoleSecret)
        router.middlewares.add(consoleAccess)
        if let limiter { router.middlewares.add(RateLimitMiddleware(limiter: limiter)) }
        router.get("/health") { _, _ in
            // During a Redis outage the process stays up and says so: 503 with redis "down",
            // until the clients have reconnected by themselves.
            let redisUp = await self.redis.isReachable()
            var health: [String: JSONValue] = [
                "status": .string(redisUp ? "ok" : "degraded"), "redis": .string(redisUp ? "up" : "down"),
                "open_streams": .number(Double(self.openStreams.value.values.reduce(0, +))),
                "live_tails": .number(Double(self.hub.liveTails)),
                "live_delta_subscriptions": .number(Double(self.hub.liveDeltaSubscriptions)),
            ]
            if let model = self.options.model { health["model"] = model }
            return jsonResponse(.object(health), status: redisUp ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { request, _ in try await self.metrics(request) }
        router.get("/v1/openapi.json") { _, _ in jsonResponse(OpenAPIDocument.document) }
        let files = UploadedFiles(
            store: store, options: options, sessionFiles: SessionFiles(store: FileStore(redis: redis, limits: options.fileStoreLimits)))
        let webhooks = WebhookNotifier(outbox: options.webhooks)
        let sessions = SessionController(store: store, log: log, inbox: inbox, files: files, webhooks: webhooks, work: work)
        let deployments = DeploymentController(store: store, log: log, queue: queue, launchBatch: options.launchBatch, webhooks: webhooks)
        AgentController(store: store, webhooks: webhooks).addRoutes(to: router.group("/v1/agents"))
        EnvironmentController(store: store, queue: queue, webhooks: webhooks).addRoutes(to: router.group("/v1/environments"))
        WorkController(store: store, queue: queue, work: work).addRoutes(to: router.group("/v1/environments/:environment_id/work"))
        sessions.addRoutes(to: router.group("/v1/sessions"))
        let events = EventController(store: store, log: log, inbox: inbox, hub: hub, openStreams: openStreams, options: options, work: work)
        events.addRoutes(to: router.group("/v1/sessions/:session_id/events"))
        ThreadController(store: store, log: log, inbox: inbox, events: events).addRoutes(to: router.group("/v1/sessions/:session_id/threads"))
        SessionResourceController(files: files).addRoutes(to: router.group("/v1/sessions/:session_id/resources"))
        deployments.addRoutes(deployments: router.group("/v1/deployments"), runs: router.group("/v1/deployment_runs"))
        FileController(files: files).addRoutes(to: router.group("/v1/files"))
        if let keyring = options.vaultKeyring {
            VaultController(store: store, keyring: keyring, replica: ControlPlaneReplica(redis: redis)).addRoutes(to: router.group("/v1/vaults"))
        } else {
            for pattern in ["/v1/vaults", "/v1/vaults/**"] {
                for method in [HTTPRequest.Method.get, .post, .delete] {
                    router.on(RouterPath(pattern), method: method) { _, _ -> Response in throw APIError.notBuilt("vaults without a vault key") }
                }
            }
        }
        UnbuiltRoutes.add(router)
        ConsoleController(
            access: consoleAccess, store: store, log: log, queue: queue, sessions: sessions, deployments: deployments,
            tail: ConsoleTail(
                log: log, hub: hub, openStreams: openStreams, pingInterval: options.pingInterval,
                maxStreamsPerWorkspace: options.maxStreamsPerWorkspace),
            localWorkspaceID: localWorkspaceID
        ).addRoutes(to: router)
        return router
    }

    /// The Prometheus text of this process. With API keys configured, a scrape needs one of
    /// them (Prometheus sends it with `authorization: {credentials: KEY}`): the figures span
    /// every workspace. In local mode, as the API, it needs none.
    func metrics(_ request: Request) async throws -> Response {
        guard let metrics = options.metrics else {
            throw APIError(
                .notFound, "not_found_error", "this process keeps no metrics. Fix: start it without --no-metrics (and DROVER_METRICS=off)")
        }
        if try await store.activeKeyCount() > 0 {
            guard let key = AuthenticationMiddleware.key(request), try await store.workspace(forKey: key) != nil else { throw APIError.unauthorized }
        }
        return await MetricsServer.response(metrics)
    }

    /// Adds what only the API knows to each scrape: the event streams open now.
    public func sampleMetrics() {
        let streams = openStreams
        let gauge = SampledGauges("drover_api_event_streams_open")
        options.metrics?.addSampler { gauge.set([[]: Double(streams.value.values.reduce(0, +))]) }
    }

    /// The Hummingbird application, a `Service` for a ServiceGroup. `onRunning` gets the bound port.
    public func application(
        logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> Application<RouterResponder<APIRequestContext>> {
        Application(
            router: router(),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "drover"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? self.options.port) },
            logger: logger
        )
    }
}
