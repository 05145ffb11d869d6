import ArgumentParser
import DroverBrain
import DroverCore
import DroverModelStub
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation

struct ThreadsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threads",
        abstract: "A coordinator fanning out to session threads: wall-clock time against the slowest thread, and what each thread message costs.",
        discussion: """
            A coordinator's model starts --threads threads in one response (create_thread), waits,
            and answers once every thread has replied. Each thread's model takes one tool call (echo,
            in process: no sandbox) and answers, each request after --model-ttft-ms, as a model
            would. --workers workers of --concurrency slots each claim the turns from one queue over
            an embedded redis-server; the scripted model runs in process.

            Reported per run and as medians over --runs:
              wall_seconds             the coordinator's user.message to its session.status_idle;
              slowest_thread_seconds   the longest thread, from its task's arrival to its idle;
              wall_over_slowest        the two's ratio: what orchestrating costs beyond the slowest
                                       thread, the coordinator's own model requests included;
              critical_path_seconds    the slowest thread plus the coordinator's model requests
                                       before and after the fan-out (a lower bound on the wall).
            Per thread message, over every run (milliseconds, Redis' clock):
              task      the coordinator's agent.thread_message_sent to the thread's first model
                        request (append, queue, claim, fence, wake, context);
              reply     the thread's agent.thread_message_sent to the coordinator's
                        agent.thread_message_received;
              wake      the last reply to the coordinator's next model request.
            """
    )

    @Option(help: "Threads the coordinator starts.") var threads = 16
    @Option(help: "Workers claiming from the queue.") var workers = 4
    @Option(help: "Slots per worker.") var concurrency = 4
    @Option(help: "The scripted model's delay before each answer, in milliseconds.") var modelTtftMs = 300
    @Option(help: "Measured runs.") var runs = 3

    func validate() throws {
        guard (1...ThreadTools.defaultLimit).contains(threads) else { throw ValidationError("--threads must be 1 to \(ThreadTools.defaultLimit)") }
        guard (1...64).contains(workers), (1...64).contains(concurrency) else { throw ValidationError("--workers and --concurrency must be 1 to 64") }
        guard (0...60_000).contains(modelTtftMs) else { throw ValidationError("--model-ttft-ms must be 0 to 60000") }
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1 to 50") }
    }

    static let coordinatorPrompt = "You coordinate the benchmark's threads."
    static let threadPrompt = "You work on one part."

    func script() throws -> ModelScript {
        let uses = (1...threads).map { index in
            (name: ThreadTools.create, input: JSONValue.object(["agent": "worker", "message": .string("part \(index)")]))
        }
        let coordinator = ModelScript(turns: [
            ModelScript.Turn(text: "Starting \(threads) threads.", toolUses: uses, ttftMilliseconds: modelTtftMs),
            ModelScript.Turn(text: "Waiting for the threads.", ttftMilliseconds: modelTtftMs),
            ModelScript.Turn(text: "Every thread replied.", ttftMilliseconds: modelTtftMs),
        ])
        let thread = try ModelScript.parse(
            yaml:
                "playbook:\n  steps:\n    - {tool: echo, input: {text: \"done: {{user_text}}\"}}\n  final: \"{{last_result}}\"\n  ttft_ms: \(modelTtftMs)\n"
        )
        var script = ModelScript()
        script.agents = [(Self.coordinatorPrompt, coordinator), (Self.threadPrompt, thread)]
        return script
    }

    func run() async throws {
        try await reportingErrors {
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-threads-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let redisServer = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
            var options = RedisClientOptions()
            options.poolSize = 4
            let redis = try await RedisClient.connect(redisServer.url, options: options)
            let model = try await ScriptedModelServer.start(script: try script())
            var failure: Error?
            do {
                print(try encodeJSON(try await measure(redis: redis, model: model)))
            } catch {
                failure = error
            }
            await model.stop()
            redis.close()
            await redisServer.stop(force: true)
            if let failure { throw failure }
        }
    }

    func measure(redis: RedisClient, model: ScriptedModelServer) async throws -> JSONValue {
        let log = SessionLog(redis: redis, database: nil)
        let queue = TaskQueue(redis: redis)
        var configuration = AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")
        configuration.retry.maxAttempts = 1
        let running = (0..<workers).map { index in
            let runner = TurnRunner(
                log: log, model: AnthropicMessagesClient(configuration: configuration), hand: InProcessHand(),
                deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "bench"))
            var workerOptions = Worker.Options()
            workerOptions.concurrency = concurrency
            workerOptions.workerId = "bench-threads-\(index)"
            let worker = Worker(queue: queue, runner: runner, options: workerOptions)
            return (worker, Task { try await worker.run() })
        }
        defer { for (_, task) in running { task.cancel() } }
        var coordinator = AgentSnapshot(model: "bench", system: Self.coordinatorPrompt)
        coordinator.roster = ThreadRoster(
            members: [
                ThreadRoster.Member(
                    name: "worker", description: nil, snapshot: AgentSnapshot(model: "bench", system: Self.threadPrompt),
                    resource: .object(["type": "agent", "name": "worker"]))
            ], inlineAgents: false)
        var samples: [Sample] = []
        for _ in 0..<runs {
            let session = SessionID.make()
            try await log.create(session, agent: coordinator)
            let sent = try await SessionInbox(log: log, queue: queue).send([.userMessage(UserMessage(text: "Fan out."))], to: session)
            let deadline = ContinuousClock.now + .seconds(300)
            while true {
                let lastSeq = try await log.lastSeq(session)
                if try await log.read(session, afterSeq: max(0, lastSeq - 1), limit: 1).last?.kind == .sessionStatusIdle { break }
                guard ContinuousClock.now < deadline else { throw ValidationError("the coordinator did not finish within 300 s") }
                try await Task.sleep(for: .milliseconds(5))
            }
            samples.append(try await Sample(log: log, session: session, start: sent.appended.processedAt))
        }
        for (worker, task) in running {
            worker.drain(timeout: .seconds(5))
            _ = try? await task.value
        }
        func median(_ values: [Double]) -> Double { round3(percentile(values.sorted(), 50)) }
        func summary(_ values: [Double]) -> JSONValue {
            let sorted = values.sorted()
            return .object([
                "count": .number(Double(sorted.count)), "p50_ms": .number(round3(percentile(sorted, 50))),
                "p99_ms": .number(round3(percentile(sorted, 99))), "max_ms": .number(round3(sorted.last ?? 0)),
            ])
        }
        return .object([
            "benchmark": "threads", "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
            "threads": .number(Double(threads)), "workers": .number(Double(workers)), "concurrency_per_worker": .number(Double(concurrency)),
            "model_ttft_ms": .number(Double(modelTtftMs)), "runs": .number(Double(runs)),
            "wall_seconds": .number(median(samples.map(\.wall))),
            "slowest_thread_seconds": .number(median(samples.map(\.slowestThread))),
            "critical_path_seconds": .number(median(samples.map(\.criticalPath))),
            "wall_over_slowest": .number(median(samples.map { $0.wall / $0.slowestThread })),
            "wall_over_critical_path": .number(median(samples.map { $0.wall / $0.criticalPath })),
            "per_run": .array(
                samples.map {
                    .object([
                        "wall_seconds": .number(round3($0.wall)), "slowest_thread_seconds": .number(round3($0.slowestThread)),
                        "critical_path_seconds": .number(round3($0.criticalPath)),
                    ])
                }),
            "task_message": summary(samples.flatMap(\.task)),
            "reply_message": summary(samples.flatMap(\.reply)),
            "coordinator_wake": summary(samples.map(\.wake)),
        ])
    }

    /// One run's timings, read from the logs (`processed_at`, Redis' clock).
    struct Sample {
        var wall = 0.0
        var slowestThread = 0.0
        var criticalPath = 0.0
        var task: [Double] = []
        var reply: [Double] = []
        var wake = 0.0

        init(log: SessionLog, session: SessionID, start: String) async throws {
            let events = try await log.read(session, afterSeq: 0, limit: 100_000)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            func at(_ text: String) -> Double { formatter.date(from: text)?.timeIntervalSince1970 ?? 0 }
            let begin = at(start)
            wall = at(events.last?.processedAt ?? start) - begin
            var sentAt: [String: Double] = [:]
            var receivedAt: [String: Double] = [:]
            for event in events {
                switch event.payload {
                case .agentThreadMessageSent(let message)?: sentAt[message.toSessionThreadId] = at(event.processedAt)
                case .agentThreadMessageReceived(let message)?: receivedAt[message.fromSessionThreadId] = at(event.processedAt)
                default: break
                }
            }
            for (thread, sent) in sentAt {
                let own = try await log.read(try SessionID(thread), afterSeq: 0, limit: 10_000)
                guard let first = own.first, let last = own.last else { continue }
                slowestThread = max(slowestThread, at(last.processedAt) - at(first.processedAt))
                if let request = own.first(where: { $0.kind == .spanModelRequestStart }) { task.append((at(request.processedAt) - sent) * 1000) }
                if let replied = own.last(where: { $0.kind == .agentThreadMessageSent }), let received = receivedAt[thread] {
                    reply.append((received - at(replied.processedAt)) * 1000)
                }
            }
            // The coordinator's own model time on the critical path: its requests before the
            // fan-out's first message, and after the last reply.
            let spans = Dictionary(
                events.compactMap { event -> (String, Double)? in
                    event.kind == .spanModelRequestStart ? (event.id, at(event.processedAt)) : nil
                }, uniquingKeysWith: { first, _ in first })
            let firstSent = sentAt.values.min() ?? begin
            let lastReply = receivedAt.values.max() ?? begin
            var ownModel = 0.0
            for event in events {
                guard case .spanModelRequestEnd(let end)? = event.payload, let started = spans[end.modelRequestStartId] else { continue }
                if started < firstSent || started > lastReply { ownModel += at(event.processedAt) - started }
            }
            criticalPath = slowestThread + ownModel
            if let next = events.first(where: { $0.kind == .spanModelRequestStart && at($0.processedAt) > lastReply }) {
                wake = (at(next.processedAt) - lastReply) * 1000
            }
        }
    }
}
