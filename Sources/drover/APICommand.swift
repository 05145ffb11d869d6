import ArgumentParser
import DroverAPI
import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverFileStore
import DroverMetrics
import DroverQueue
import DroverRuntime
import DroverSchedule
import DroverSessionLog
import DroverWebhooks
import Foundation
import Logging
import ServiceLifecycle

/// Where and how the HTTP API listens; shared by `drover api` and `drover serve`.
struct APIOptions: ParsableArguments {
    @Option(help: "host:port to listen on (default: DROVER_API_ADDR, else 127.0.0.1:8787).") var address: String?
    @Option(help: "Seconds between ping keep-alives on idle event streams.") var pingSeconds: Double = 15
    @Option(help: "Event streams one workspace may hold open at once; more answer 429.") var maxStreamsPerWorkspace = 1000
    @Option(help: "Largest file the Files API accepts, in bytes; larger uploads answer 413.") var maxFileBytes = 32 << 20
    @Option(help: "Requests a second each workspace may make on average; more answer 429 with retry-after. 0: unlimited.") var requestsPerSecond:
        Double = 200
    @Option(help: "Requests each workspace may make at once before --requests-per-second applies.") var requestBurst = 400
    @Option(help: "Seconds before a failed webhook delivery is tried again; each later wait doubles (with jitter), up to 4 hours.")
    var webhookRetrySeconds: Double = 10
    @Option(help: "Tries of one webhook delivery before it goes to the dead letters (18, from 10 s: about a day).")
    var webhookAttempts = 18
    @Option(help: "Seconds one webhook delivery may take before it counts as failed.") var webhookTimeoutSeconds: Double = 10
    @Option(
        help:
            "Seconds a self-hosted worker's lease on a work item lasts without a heartbeat (the SDK's worker renews it at half that). When it lapses, the calls it ran get error results."
    )
    var workLeaseSeconds = 60

    /// How this process delivers webhooks.
    func webhookPolicy() throws -> WebhookRetryPolicy {
        guard webhookRetrySeconds > 0, webhookRetrySeconds <= 86400 else {
            throw ValidationError("--webhook-retry-seconds: must be more than 0 and at most 86400")
        }
        guard (1...100).contains(webhookAttempts) else { throw ValidationError("--webhook-attempts: must be 1 to 100") }
        guard webhookTimeoutSeconds > 0, webhookTimeoutSeconds <= 300 else {
            throw ValidationError("--webhook-timeout-seconds: must be more than 0 and at most 300")
        }
        var policy = WebhookRetryPolicy()
        policy.base = .seconds(webhookRetrySeconds)
        policy.attempts = webhookAttempts
        policy.timeout = .seconds(webhookTimeoutSeconds)
        return policy
    }

    /// The outbox the API, the recorder and the scheduler of this process queue webhooks into.
    func webhookOutbox(runtime: RuntimeEnvironment) throws -> WebhookOutbox {
        WebhookOutbox(database: try runtime.database(), queue: TaskQueue(redis: runtime.redis), policy: try webhookPolicy())
    }

    /// Delivers the queued webhooks, beside the API.
    func webhookDeliverer(runtime: RuntimeEnvironment) throws -> some Service {
        NamedService("the webhook deliverer", WebhookDeliverer(database: try runtime.database(), redis: runtime.redis, policy: try webhookPolicy()))
    }

    /// `--address`, else `DROVER_API_ADDR`, else the default.
    var listenAddress: String { address ?? DroverConfiguration.apiAddress() }

    /// Refuses an address something already listens on, before anything starts: found later,
    /// it would stop a process that had started Redis, its worker and its scheduler.
    func checkAddressIsFree(command: String) throws {
        let text = listenAddress
        let (host, port) = try APIServer.address(text)
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        // Only an IPv4 address is probed; a name is left to the server's own bind.
        guard port > 0, inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &socketAddress.sin_addr) == 1 else { return }
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return }
        defer { close(probe) }
        // As the server binds: a port left in TIME_WAIT by an earlier run is free.
        var on: Int32 = 1
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 && errno == EADDRINUSE {
            throw FieldError(
                field: address == nil ? "DROVER_API_ADDR" : "--address",
                message: "\(text) is in use: another process (a drover \(command) already running?) listens there",
                fix: "stop that process, or listen elsewhere with --address 127.0.0.1:PORT (or DROVER_API_ADDR)")
        }
    }

    /// Builds the server. With no API key configured it runs in single-user local mode, which
    /// listens on loopback only and puts everyone in the `default` workspace; it says so.
    /// `model`: what this process's worker calls, for `/health` (`drover serve`); nil for an API alone.
    func makeServer(runtime: RuntimeEnvironment, model: JSONValue? = nil, metrics: MetricsExposition? = nil) async throws -> APIServer {
        let text = listenAddress
        let (host, port) = try APIServer.address(text)
        guard pingSeconds > 0 else { throw ValidationError("--ping-seconds: must be positive") }
        let store = ControlPlaneStore(database: try runtime.database())
        let local = try await store.workspace(named: "default")
        if try await store.activeKeyCount() == 0 {
            guard APIServer.isLoopback(host) else {
                throw FieldError(
                    field: "DROVER_API_ADDR",
                    message: "no API key is configured, so the API runs in single-user local mode, which listens on loopback only, not \(host)",
                    fix: "create a key with `drover keys create --workspace NAME`, or listen on 127.0.0.1")
            }
            note(
                "drover api: single-user local mode: no API key is configured, every caller is in workspace 'default', loopback only (create keys with `drover keys create --workspace NAME`)"
            )
        }
        // Workers on other hosts read credentials and repositories from the copy in Redis: mend
        // whatever a crash left unpublished between a SQLite write and its publication.
        try await ControlPlaneReplica(redis: runtime.redis).publishEverything(from: store)
        var options = APIServer.Options()
        options.host = host
        options.port = port
        options.pingInterval = .milliseconds(Int(pingSeconds * 1000))
        guard maxStreamsPerWorkspace > 0 else { throw ValidationError("--max-streams-per-workspace: must be positive") }
        options.maxStreamsPerWorkspace = maxStreamsPerWorkspace
        guard maxFileBytes > 0 else { throw ValidationError("--max-file-bytes: must be positive") }
        options.maxFileBytes = maxFileBytes
        guard requestsPerSecond >= 0, requestsPerSecond.isFinite else {
            throw ValidationError("--requests-per-second: must be 0 (unlimited) or more")
        }
        guard requestBurst > 0 else { throw ValidationError("--request-burst: must be positive") }
        options.rateLimit = requestsPerSecond > 0 ? (requestsPerSecond, requestBurst) : nil
        guard (2...600).contains(workLeaseSeconds) else { throw ValidationError("--work-lease-seconds: must be 2 to 600") }
        options.work.leaseTTL = .seconds(workLeaseSeconds)
        options.filesDirectory = runtime.configuration.dataDirectory.appendingPathComponent("files")
        // Session file resources are copied where this host's sandboxes will find them.
        options.fileStoreLimits = try FileStoreLimits.fromEnvironment()
        // Loaded once now, so that a bad key stops the server at start rather than at a write.
        _ = try runtime.vaultKeyring()
        options.vaultKeyring = runtime.vaultKeyring
        // A manual run of a job deployment starts its batch, as the scheduler's fires do.
        let launcher = BatchLauncher(dataDirectory: runtime.configuration.dataDirectory, redis: runtime.redis)
        options.launchBatch = { try await launcher.launch($0) }
        options.model = model
        options.metrics = metrics
        options.webhooks = try webhookOutbox(runtime: runtime)
        let server = APIServer(
            log: try runtime.sessionLog, store: store, queue: TaskQueue(redis: runtime.redis), redis: runtime.redis,
            options: options, localWorkspaceID: local)
        server.sampleMetrics()
        metrics?.sampleQueues(runtime.redis)
        metrics?.sampleRecorder(runtime.redis)
        return server
    }
}

func apiService(_ server: APIServer, role: String, logs: LogSettings) -> some Service {
    var logger = Logger(label: "drover.api")
    // Hummingbird's own lines only when asked for below info: each request has its line already.
    logger.logLevel = logs.level < .info ? logs.level : .warning
    return server.application(logger: logger) { port in
        note("drover \(role): listening on http://\(server.options.host):\(port)")
    }
}

struct APICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Serve the Managed Agents HTTP API (the anthropic SDK's client.beta.agents/environments/sessions).",
        discussion: """
            Listens on DROVER_API_ADDR (default 127.0.0.1:8787). Keys come from `drover keys`; with none,
            it runs in single-user local mode on loopback. Turns run in `drover worker`s; `drover serve`
            runs API, worker and recorder in one process.
            """
    )

    @OptionGroup var api: APIOptions
    @OptionGroup var observability: ObservabilityOptions

    func run() async throws {
        try observability.refuseMetricsAddress(role: "api")
        let observed = try observability.bootstrap()
        try api.checkAddressIsFree(command: "api")
        try await withRuntime(exitOnSignal: false, startup: .waitForRedis(role: "drover api")) { runtime in
            let server = try await api.makeServer(runtime: runtime, metrics: observed.metrics)
            let group = ServiceGroup(
                services: [try api.webhookDeliverer(runtime: runtime), apiService(server, role: "api", logs: observed.logs)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "drover.api"))
            try await group.run()
        }
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the API, a worker and the recorder in one process.",
        discussion: """
            One ServiceGroup: on SIGTERM or Ctrl-C the API stops first, then the worker drains (running
            turns get --drain-seconds, then their leases are handed back), then the recorder finishes
            its batch.
            """
    )

    @OptionGroup var api: APIOptions
    @OptionGroup var worker: WorkerOptions
    @Flag(inversion: .prefixedNo, help: "Also run a scheduler (it contends for the leader lock with any others).") var scheduler = true
    @OptionGroup var observability: ObservabilityOptions

    func run() async throws {
        try observability.refuseMetricsAddress(role: "serve")
        let observed = try observability.bootstrap()
        try api.checkAddressIsFree(command: "serve")
        let model = try await worker.resolveModel()
        // The first line says which model answers, so that scripted answers are never taken for a real model's.
        note("drover serve: model: \(model.label)")
        try Self.refuseLoop(model, apiAddress: api.listenAddress)
        try await withRuntime(exitOnSignal: false, startup: .waitForRedis(role: "drover serve")) { runtime in
            let server = try await api.makeServer(runtime: runtime, model: model.health, metrics: observed.metrics)
            let (worker, mcp, toolset) = try self.worker.makeWorker(runtime: runtime, model: model.configuration, apiAddress: api.address)
            await toolset?.pool.prewarm()
            if let pool = toolset?.pool { observed.metrics?.samplePool(pool) }
            let database = try runtime.database()
            let webhooks = try api.webhookOutbox(runtime: runtime)
            var recording = Recorder.Options()
            recording.afterCommit = webhooks.recorderHook
            let recorder = Recorder(redis: runtime.redis, database: database, options: recording)
            var services: [any Service] = [
                NamedService("the recorder", RecorderService(recorder: recorder)), NamedService("the worker", WorkerService(worker: worker)),
                NamedService("the remote hands sweeper", try RemoteHandsService(runtime: runtime)), try api.webhookDeliverer(runtime: runtime),
            ]
            if scheduler {
                let store = DeploymentStore(database: database)
                var firer = DeploymentFirer(store: store, sessionLog: try runtime.sessionLog, queue: TaskQueue(redis: runtime.redis))
                firer.webhooks = webhooks
                let launcher = BatchLauncher(dataDirectory: runtime.configuration.dataDirectory, redis: runtime.redis)
                firer.launchBatch = { try await launcher.launch($0) }
                services.append(
                    NamedService(
                        "the scheduler",
                        SchedulerService(
                            scheduler: Scheduler(
                                redis: runtime.redis, store: store, firer: firer, clock: SystemSchedulerClock(),
                                options: Scheduler.Options(), logger: Logger(label: "drover.scheduler")))))
            }
            services.append(NamedService("the API", apiService(server, role: "serve", logs: observed.logs)))
            note(
                "drover serve: worker with \(self.worker.concurrency) slots, \(self.worker.hands) hands; recorder into \(runtime.configuration.databasePath.path)\(scheduler ? "; scheduler" : "")"
            )
            // Shutdown runs in reverse: the API stops taking requests, the scheduler stops, the worker drains, the recorder finishes.
            let group = ServiceGroup(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "drover.serve")
            )
            try await group.run()
            await mcp.shutdown()
            await toolset?.pool.shutdown()
            await model.scripted?.stop()
            note("drover serve: stopped")
        }
    }
}

extension ServeCommand {
    /// A model URL that is this server's own API would have every turn ask itself.
    static func refuseLoop(_ model: WorkerModel, apiAddress: String) throws {
        guard model.scripted == nil, let url = URL(string: model.configuration.baseURL), let host = url.host,
            let (apiHost, apiPort) = try? APIServer.address(apiAddress)
        else { return }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        let loopback = { (name: String) in APIServer.isLoopback(name) || name == "0.0.0.0" }
        if port == apiPort && (host == apiHost || (loopback(host) && loopback(apiHost))) {
            throw FieldError(
                field: "ANTHROPIC_BASE_URL",
                message: "\(model.configuration.baseURL) is this server's own API (\(apiAddress)), not a model",
                fix: "unset ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY to use the scripted model, or point them at the Messages API")
        }
    }
}

/// A service whose failure names it: one process runs several, and "lost the connection to
/// Redis" alone does not say which of them gave up.
struct NamedService<Wrapped: Service>: Service {
    let name: String
    let wrapped: Wrapped

    init(_ name: String, _ wrapped: Wrapped) {
        self.name = name
        self.wrapped = wrapped
    }

    func run() async throws {
        do {
            try await wrapped.run()
        } catch {
            note("drover: \(name) stopped with an error: \(error)")
            throw error
        }
    }
}
