import ArgumentParser
import DroverBrain
import DroverCore
import DroverDatabase
import DroverModelStub
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation

struct TTFTBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ttft",
        abstract: "Time to first token, with hands provisioned lazily (beside the model call) or eagerly (before it).",
        discussion: """
            Runs --sessions sessions through a real worker (embedded redis-server, SQLite, the scripted
            model over HTTP with --model-ttft-ms before its first token) in waves of --concurrency,
            once per mode. Latency is sending the first message (append and turn task) to the first text delta; orchestration
            overhead is that minus the scripted time to first token. Provisioning here is the
            in-process hand's --provision-ms delay, not a bubblewrap sandbox, and the JSON says so;
            `drover bench hands` measures real sandboxes.
            """
    )

    @Option(help: "Sessions per mode.") var sessions = 200
    @Option(help: "Sessions started at once (one wave).") var concurrency = 20
    @Option(help: "The scripted model's time to first token.") var modelTtftMs = 300
    @Option(help: "Simulated hand provisioning time.") var provisionMs = 2000

    func run() async throws {
        try await reportingErrors {
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-ttft-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let redisServer = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
            var options = RedisClientOptions()
            options.poolSize = concurrency * 2 + 8
            let redis = try await RedisClient.connect(redisServer.url, options: options)
            let database = try MirrorDatabase(path: directory.appendingPathComponent("drover.db").path)
            let model = try await ScriptedModelServer.start(
                script: ModelScript(turns: [
                    ModelScript.Turn(text: "First token after the scripted delay.", ttftMilliseconds: modelTtftMs)
                ]))
            var report: [String: JSONValue] = [
                "benchmark": .string("ttft"), "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                "sessions_per_mode": .number(Double(sessions)), "concurrency": .number(Double(concurrency)),
                "model_ttft_ms": .number(Double(modelTtftMs)), "provision_ms": .number(Double(provisionMs)),
                "provisioning": .string(
                    "simulated: an in-process hand delay of provision_ms, not a bubblewrap sandbox (drover bench hands measures those)"),
            ]
            do {
                for eager in [false, true] {
                    report[eager ? "eager" : "lazy"] = try await measure(eager: eager, redis: redis, database: database, model: model)
                }
            } catch {
                await model.stop()
                redis.close()
                await redisServer.stop(force: true)
                throw error
            }
            if case .object(let lazy)? = report["lazy"], case .object(let eager)? = report["eager"],
                case .number(let l)? = lazy["ttft_p95_ms"], case .number(let e)? = eager["ttft_p95_ms"], e > 0
            {
                report["lazy_p95_over_eager_p95"] = .number(round3(l / e))
            }
            print(try encodeJSON(JSONValue.object(report)))
            await model.stop()
            redis.close()
            await redisServer.stop(force: true)
        }
    }

    private func measure(eager: Bool, redis: RedisClient, database: MirrorDatabase, model: ScriptedModelServer) async throws -> JSONValue {
        let log = SessionLog(redis: redis, database: database)
        let queue = TaskQueue(redis: redis)
        let firstTokens = Locked<[SessionID: ContinuousClock.Instant]>([:])
        let runner = TurnRunner(
            log: log,
            model: AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")),
            hand: InProcessHand(provisioningDelay: .milliseconds(provisionMs)),
            deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "bench"),
            eagerHands: eager,
            onFirstToken: { session in
                let now = ContinuousClock.now
                firstTokens.withLock { if $0[session] == nil { $0[session] = now } }
            }
        )
        var workerOptions = Worker.Options()
        workerOptions.concurrency = concurrency
        let worker = Worker(queue: queue, runner: runner, options: workerOptions)
        let working = Task { try await worker.run() }
        var latencies: [Double] = []
        var remaining = sessions
        while remaining > 0 {
            let wave = min(concurrency, remaining)
            remaining -= wave
            var started: [(SessionID, ContinuousClock.Instant)] = []
            for _ in 0..<wave {
                let session = SessionID.make()
                try await log.create(session)
                started.append((session, ContinuousClock.now))
                try await SessionInbox(log: log, queue: queue).send(
                    [.userMessage(UserMessage(text: "go"))],
                    to: session)
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while started.contains(where: { firstTokens.value[$0.0] == nil }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            for (session, at) in started {
                guard let first = firstTokens.value[session] else { throw ValidationError("session \(session) got no first token within 60 s") }
                latencies.append((first - at).seconds * 1000)
            }
            // Let the wave's turns finish before the next, so waves do not queue behind each other.
            for (session, _) in started {
                while try await log.meta(session)?.status != "idle" { try await Task.sleep(for: .milliseconds(5)) }
            }
        }
        worker.drain()
        working.cancel()
        _ = try? await working.value
        let sorted = latencies.sorted()
        let overhead = sorted.map { $0 - Double(modelTtftMs) }
        return .object([
            "ttft_p50_ms": .number(round3(percentile(sorted, 50))),
            "ttft_p95_ms": .number(round3(percentile(sorted, 95))),
            "orchestration_overhead_p50_ms": .number(round3(percentile(overhead, 50))),
            "orchestration_overhead_p95_ms": .number(round3(percentile(overhead, 95))),
        ])
    }
}
