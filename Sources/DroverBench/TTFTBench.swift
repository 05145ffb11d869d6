import ArgumentParser
import DroverBrain
import DroverCore
import DroverDatabase
import DroverHands
import DroverModelStub
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSessionLog
import DroverTools
import Foundation

struct TTFTBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ttft",
        abstract: "Time to first token on real bubblewrap sandboxes, provisioned lazily (beside the model call) or eagerly (before it).",
        discussion: """
            Sessions run through a real worker (embedded redis-server, SQLite, the scripted model over
            HTTP with --model-ttft-ms before its first token, the sandbox toolset on bubblewrap) in
            waves, lazily and then eagerly, for three cases:

              warm      the pool holds a started sandbox for every session of a wave: its checkout
                        is the rename of a volume
              cold      no warm sandbox: each session starts its own (volume, bubblewrap, shell)
              packages  each session's environment names a pip package that no layer holds yet:
                        pip installs it into a new layer (offline, from a wheel directory this
                        bench writes), then the session's sandbox starts on it

            Latency runs from sending the first message (its append and turn task) to the first
            text delta. Orchestration overhead is that minus the scripted time to first token.
            Lazy provisioning starts beside the first model request, so only a tool call waits for
            it; eager provisioning finishes before the request is sent.
            """
    )

    @Option(help: "Sessions per mode in the warm and the cold case.") var sessions = 100
    @Option(help: "Sessions started at once (one wave) in the warm and the cold case.") var concurrency = 10
    @Option(help: "Sessions per mode in the packages case (each installs a package layer).") var packageSessions = 16
    @Option(help: "Sessions started at once in the packages case.") var packageConcurrency = 4
    @Option(help: "The scripted model's time to first token.") var modelTtftMs = 500
    @Option(help: "Modules of 16 KiB in the packages case's wheel (150: about pytest and its dependencies).") var packageModules = 150

    func validate() throws {
        guard sessions >= 1, packageSessions >= 1 else { throw ValidationError("--sessions and --package-sessions must be at least 1") }
        // Warm sandboxes and the wave's own sandboxes live together under the pool's capacity.
        let capacity = SandboxPoolSettings().capacity / 2
        guard (1...capacity).contains(concurrency), (1...capacity).contains(packageConcurrency) else {
            throw ValidationError("--concurrency and --package-concurrency must be between 1 and \(capacity)")
        }
        guard (0...10_000).contains(packageModules) else { throw ValidationError("--package-modules must be between 0 and 10000") }
        guard (0...60_000).contains(modelTtftMs) else { throw ValidationError("--model-ttft-ms must be between 0 and 60000") }
    }

    enum Case: String, CaseIterable {
        case warm, cold, packages
    }

    func run() async throws {
        guard Sandbox.bubblewrap != nil else { throw ValidationError("bubblewrap is not installed: apt-get install -y bubblewrap") }
        try await reportingErrors {
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-ttft-\(getpid())")
            let redisServer = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
            // The sandboxes' user must be able to reach their workspaces, which the data directory's
            // mode (for Redis' files) would not let it.
            let handsDirectory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-ttft-hands-\(getpid())")
            var redis: RedisClient?
            var model: ScriptedModelServer?
            var failure: Error?
            defer {
                try? FileManager.default.removeItem(at: directory)
                try? FileManager.default.removeItem(at: handsDirectory)
            }
            do {
                let client = try await RedisClient.connect(redisServer.url)
                redis = client
                let server = try await ScriptedModelServer.start(
                    script: ModelScript(turns: [
                        ModelScript.Turn(text: "First token after the scripted delay.", ttftMilliseconds: modelTtftMs)
                    ]))
                model = server
                let database = try MirrorDatabase(path: directory.appendingPathComponent("drover.db").path)
                let wheels = handsDirectory.appendingPathComponent("wheels")
                try await Self.writeWheels(count: packageSessions * 2, modules: packageModules, moduleBytes: 16 << 10, into: wheels)
                var report: [String: JSONValue] = [
                    "benchmark": .string("ttft"), "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                    "model_ttft_ms": .number(Double(modelTtftMs)),
                    "sandboxes": .string(
                        "bubblewrap, on " + (LoopVolumeSupport.unavailableReason.map { "plain directories (\($0))" } ?? "loop-mounted ext4 volumes")),
                ]
                var nextPackage = 0
                var lazyOverheads: [Double] = []
                for benchCase in Case.allCases {
                    let count = benchCase == .packages ? packageSessions : sessions
                    let wave = benchCase == .packages ? packageConcurrency : concurrency
                    var modes: [String: [Double]] = [:]
                    for eager in [false, true] {
                        let environments = (0..<count).map { _ in
                            guard benchCase == .packages else { return nil as String? }
                            nextPackage += 1
                            return Self.packageEnvironment(version: nextPackage)
                        }
                        let run = BenchRun(
                            benchCase: benchCase, eager: eager, wave: wave, environments: environments,
                            root: handsDirectory.appendingPathComponent("\(benchCase.rawValue)-\(eager ? "eager" : "lazy")"),
                            pipOptions: ["--no-index", "--find-links", wheels.path])
                        modes[eager ? "eager" : "lazy"] = try await run.measure(redis: client, database: database, model: server)
                    }
                    let lazy = modes["lazy"] ?? [], eager = modes["eager"] ?? []
                    lazyOverheads += lazy.map { $0 - Double(modelTtftMs) }
                    report[benchCase.rawValue] = .object([
                        "sessions_per_mode": .number(Double(count)), "concurrency": .number(Double(wave)),
                        "lazy": summary(lazy), "eager": summary(eager),
                        "lazy_over_eager_p50": .number(round3(percentile(lazy, 50) / percentile(eager, 50))),
                        "lazy_over_eager_p95": .number(round3(percentile(lazy, 95) / percentile(eager, 95))),
                    ])
                }
                if case .object(let packages)? = report["packages"] {
                    report["packages_lazy_over_eager_p95"] = packages["lazy_over_eager_p95"]
                }
                report["lazy_orchestration_overhead_p50_ms"] = .number(round3(percentile(lazyOverheads.sorted(), 50)))
                print(try encodeJSON(JSONValue.object(report)))
            } catch {
                failure = error
            }
            await model?.stop()
            redis?.close()
            await redisServer.stop(force: true)
            if let failure { throw failure }
        }
    }

    private func summary(_ sorted: [Double]) -> JSONValue {
        let overhead = sorted.map { $0 - Double(modelTtftMs) }
        return .object([
            "ttft_p50_ms": .number(round3(percentile(sorted, 50))), "ttft_p95_ms": .number(round3(percentile(sorted, 95))),
            "orchestration_overhead_p50_ms": .number(round3(percentile(overhead, 50))),
            "orchestration_overhead_p95_ms": .number(round3(percentile(overhead, 95))),
        ])
    }

    /// An environment whose only package is `droverttft==1.VERSION`: a configuration, and so a
    /// package layer, of its own.
    static func packageEnvironment(version: Int) -> String {
        """
        {"type":"cloud","networking":{"type":"limited","allowed_hosts":[],"allow_mcp_servers":false,"allow_package_managers":false},\
        "packages":{"type":"packages","pip":["droverttft==1.\(version)"]}}
        """
    }

    /// Versions 1.1 to 1.COUNT of a wheel, `droverttft`, so that pip installs without a network
    /// and each session's environment has a layer of its own to install. Each holds `modules`
    /// modules of `moduleBytes` bytes of Python source.
    static func writeWheels(count: Int, modules: Int, moduleBytes: Int, into directory: URL) async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let program = """
            import sys, zipfile
            directory, count, modules, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
            line = "VALUE_%06d = 'a line of source that makes the module the size of real code'\\n"
            body = "".join(line % n for n in range(max(1, size // len(line % 0))))
            for version in range(1, count + 1):
                name = "droverttft-1.%d" % version
                with zipfile.ZipFile("%s/%s-py3-none-any.whl" % (directory, name), "w", zipfile.ZIP_DEFLATED) as z:
                    z.writestr("droverttft/__init__.py", "VERSION = %d\\n" % version)
                    for module in range(modules):
                        z.writestr("droverttft/module_%04d.py" % module, body)
                    z.writestr(name + ".dist-info/METADATA", "Metadata-Version: 2.1\\nName: droverttft\\nVersion: 1.%d\\n" % version)
                    z.writestr(name + ".dist-info/WHEEL", "Wheel-Version: 1.0\\nGenerator: drover-bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
                    z.writestr(name + ".dist-info/RECORD", "")
            """
        let child = try ChildProcess(
            executable: "/usr/bin/python3", arguments: ["-c", program, directory.path, String(count), String(modules), String(moduleBytes)])
        let code = await child.exitCodeWhenDone()
        guard code == 0 else { throw ValidationError("writing the bench's wheels with /usr/bin/python3 failed (exit \(code))") }
    }
}

/// One case in one mode: a worker with its own sandbox pool, fed waves of new sessions.
private struct BenchRun {
    let benchCase: TTFTBench.Case
    let eager: Bool
    let wave: Int
    /// One per session: its environment config as JSON, or nil for none.
    let environments: [String?]
    let root: URL
    let pipOptions: [String]

    /// The sorted latencies, send to first token, in milliseconds.
    func measure(redis: RedisClient, database: MirrorDatabase, model: ScriptedModelServer) async throws -> [Double] {
        var settings = SandboxPoolSettings()
        settings.warmPerConfiguration = benchCase == .warm ? wave : 0
        settings.pipOptions = pipOptions
        let toolset = AgentToolset(root: root, pool: settings)
        let pool = toolset.pool
        let log = SessionLog(redis: redis, database: database)
        let queue = TaskQueue(redis: redis)
        let firstTokens = Locked<[SessionID: ContinuousClock.Instant]>([:])
        let runner = TurnRunner(
            log: log,
            model: AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")),
            hand: toolset, deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "bench"), eagerHands: eager,
            onFirstToken: { session in
                let now = ContinuousClock.now
                firstTokens.withLock { if $0[session] == nil { $0[session] = now } }
            }
        )
        var workerOptions = Worker.Options()
        workerOptions.concurrency = wave
        let worker = Worker(queue: queue, runner: runner, options: workerOptions)
        let working = Task { try await worker.run() }
        defer { working.cancel() }
        if benchCase == .warm { await pool.prewarm() }
        var latencies: [Double] = []
        var failure: Error?
        do {
            for first in stride(from: 0, to: environments.count, by: wave) {
                let batch = environments[first..<min(first + wave, environments.count)]
                if benchCase == .warm { try await waitForWarm(pool, batch.count) }
                var started: [(session: SessionID, environment: EnvironmentConfig, at: ContinuousClock.Instant)] = []
                for environment in batch {
                    let session = SessionID.make()
                    try await log.create(session, environmentJSON: environment)
                    started.append((session, try EnvironmentConfig.parse(environment.map { try JSONValue.parse($0) }), ContinuousClock.now))
                    try await SessionInbox(log: log, queue: queue).send([.userMessage(UserMessage(text: "go"))], to: session)
                }
                try await until("a first token for every session of the wave", deadline: .seconds(300)) {
                    let seen = firstTokens.value
                    return started.allSatisfy { seen[$0.session] != nil }
                }
                let seen = firstTokens.value
                latencies += started.compactMap { entry in seen[entry.session].map { ($0 - entry.at).seconds * 1000 } }
                // Untimed: the wave's turns end and its sandboxes (a lazy one may still be starting)
                // are ready, then released, so that waves do not queue behind each other.
                for entry in started {
                    try await until("session \(entry.session) to go idle", deadline: .seconds(120)) {
                        try await log.meta(entry.session)?.status == "idle"
                    }
                    _ = try await pool.checkout(entry.session, environment: entry.environment)
                    await pool.release(entry.session)
                    await pool.layout.volume(entry.session.rawValue).remove()
                }
            }
        } catch {
            failure = error
        }
        worker.drain()
        await pool.shutdown()
        await pool.layout.unmountAll()
        if let failure { throw failure }
        return latencies.sorted()
    }

    private func waitForWarm(_ pool: SandboxPool, _ count: Int) async throws {
        do {
            try await until("\(count) warm sandboxes", deadline: .seconds(120)) { await pool.stats.warm >= count }
        } catch {
            throw ValidationError("\(error); the pool has \(await pool.stats)")
        }
    }

    private func until(_ what: String, deadline: Duration, _ condition: () async throws -> Bool) async throws {
        let end = ContinuousClock.now + deadline
        while try await !condition() {
            guard ContinuousClock.now < end else { throw ValidationError("waited \(deadline) for \(what)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
