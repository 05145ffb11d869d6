import ArgumentParser
import DroverAPI
import DroverBrain
import DroverCore
import DroverDatabase
import DroverHTTP
import DroverHands
import DroverModelStub
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSelfHosted
import DroverSessionLog
import Foundation
import Logging

struct SelfHostedBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selfhosted",
        abstract: "A tool call through the anthropic SDK's EnvironmentWorker, against the same call in a Drover sandbox; idle work pickup.",
        discussion: """
            Starts the API and a worker in-process (embedded redis-server, SQLite, bubblewrap sandboxes, the
            scripted model with no think time) and the SDK's own EnvironmentWorker in a --python process.
            Two sessions, one in a cloud environment and one self-hosted, each get --calls messages,
            interleaved; each message makes one `bash` call of `true`, then a final answer. From the
            log's processed_at times:
              call_ms    agent.tool_use to its result (the sandbox's agent.tool_result, or the
                         worker's user.tool_result);
              resume_ms  agent.tool_use to the next model request, the round trip the model waits.
            idle_pickup_ms is a long poll (GET .../work/poll?block_ms=999) waiting on an empty
            queue, from the moment an item is queued to the poll's answer.
            """
    )

    @Option(help: "Calls per mode.") var calls = 30
    @Option(help: "A Python with the anthropic SDK installed.") var python = ".venv/bin/python"
    @Option(help: "Idle long polls to time.") var polls = 30

    func run() async throws {
        try await reportingErrors {
            guard FileManager.default.isExecutableFile(atPath: python) else {
                throw ValidationError("--python: \(python) is not an executable; give a Python with the anthropic SDK (scripts/setup makes .venv)")
            }
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-selfhosted-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let redisServer = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
            let redis = try await RedisClient.connect(redisServer.url)
            let database = try MirrorDatabase(path: directory.appendingPathComponent("drover.db").path)
            let store = ControlPlaneStore(database: database)
            let log = SessionLog(redis: redis, database: database)
            let queue = TaskQueue(redis: redis)
            var options = APIServer.Options()
            options.port = 0
            options.requestLogger.logLevel = .critical
            let server = APIServer(
                log: log, store: store, queue: queue, redis: redis, options: options, localWorkspaceID: try await store.workspace(named: "default"))
            let (port, serving) = await serveInProcess(server, label: "drover.bench.selfhosted")
            let model = try await ScriptedModelServer.start(
                script: try ModelScript.parse(yaml: "playbook:\n  steps:\n    - tool: bash\n      input: {command: \"true\"}\n  final: \"done\"\n"))
            let toolset = AgentToolset(root: directory.appendingPathComponent("hands"))
            let runner = TurnRunner(
                log: log, model: AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")),
                hand: toolset, deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "bench"))
            var workerOptions = Worker.Options()
            workerOptions.concurrency = 4
            let worker = Worker(queue: queue, runner: runner, options: workerOptions)
            let working = Task { try await worker.run() }
            var sdkWorker: ChildProcess?
            defer {
                serving.cancel()
                worker.drain()
                working.cancel()
            }
            let api = "http://127.0.0.1:\(port)"
            let client = BenchClient(base: api)
            let agent = try await client.call(
                "/v1/agents", #"{"name": "bench", "model": "claude-sonnet-4-5", "tools": [{"type": "agent_toolset_20260401"}]}"#)["id"]!
            let cloud = try await client.call("/v1/environments", #"{"name": "cloud"}"#)["id"]!.stringValue!
            let selfHosted = try await client.call("/v1/environments", #"{"name": "laptop", "config": {"type": "self_hosted"}}"#)["id"]!.stringValue!
            let key = try await client.call("/v1/environments/\(selfHosted)/keys", "{}")["key"]!.stringValue!
            let script = directory.appendingPathComponent("worker.py")
            try Self.workerScript.write(to: script, atomically: true, encoding: .utf8)
            let workdir = directory.appendingPathComponent("work")
            try FileManager.default.createDirectory(at: workdir, withIntermediateDirectories: true)
            var environment = ProcessInfo.processInfo.environment
            environment["BENCH_ENVIRONMENT_KEY"] = key
            sdkWorker = try ChildProcess(
                executable: python, arguments: [script.path, api, selfHosted, workdir.path], environment: environment,
                outputPath: directory.appendingPathComponent("worker.log").path)
            defer { if let sdkWorker { Task { await sdkWorker.kill() } } }

            let sessions = [
                "sandbox": try await client.call("/v1/sessions", #"{"agent": \#(agent.compactJSON), "environment_id": "\#(cloud)"}"#)["id"]!
                    .stringValue!,
                "self_hosted": try await client.call("/v1/sessions", #"{"agent": \#(agent.compactJSON), "environment_id": "\#(selfHosted)"}"#)[
                    "id"]!.stringValue!,
            ]
            var callMs: [String: [Double]] = [:]
            var resumeMs: [String: [Double]] = [:]
            // One unmeasured call each: the sandbox's first provisioning, the worker's first claim.
            for round in 0...calls {
                for mode in ["sandbox", "self_hosted"] {
                    let session = try SessionID(sessions[mode]!)
                    let (call, resume) = try await measureCall(session, client: client, log: log)
                    if round > 0 {
                        callMs[mode, default: []].append(call)
                        resumeMs[mode, default: []].append(resume)
                    }
                }
            }
            let pickup = try await measurePickup(client: client, work: WorkQueue(redis: redis), environment: selfHosted)
            func summary(_ values: [Double]?) -> JSONValue { latencySummary((values ?? []).sorted()) }
            let added = percentile((callMs["self_hosted"] ?? []).sorted(), 50) - percentile((callMs["sandbox"] ?? []).sorted(), 50)
            let addedResume =
                percentile((resumeMs["self_hosted"] ?? []).sorted(), 50) - percentile((resumeMs["sandbox"] ?? []).sorted(), 50)
            print(
                try encodeJSON(
                    JSONValue.object([
                        "benchmark": "selfhosted", "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                        "calls_per_mode": .number(Double(calls)),
                        "worker": "the anthropic SDK's EnvironmentWorker (Python), in a process of its own; sandbox: bubblewrap, warm",
                        "sandbox": .object(["call_ms": summary(callMs["sandbox"]), "resume_ms": summary(resumeMs["sandbox"])]),
                        "self_hosted": .object(["call_ms": summary(callMs["self_hosted"]), "resume_ms": summary(resumeMs["self_hosted"])]),
                        "added_call_p50_ms": .number(round3(added)), "added_resume_p50_ms": .number(round3(addedResume)),
                        "idle_pickup_ms": latencySummary(pickup.sorted()),
                    ])))
            await sdkWorker?.kill()
            sdkWorker = nil
            await toolset.pool.shutdown()
            await model.stop()
            redis.close()
            await redisServer.stop(force: true)
        }
    }

    /// Sends one message and waits for the turn to end; returns call_ms and resume_ms of its call.
    private func measureCall(_ session: SessionID, client: BenchClient, log: SessionLog) async throws -> (Double, Double) {
        let from = try await log.lastSeq(session)
        _ = try await client.call(
            "/v1/sessions/\(session.rawValue)/events", #"{"events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]}"#)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let events = try await log.read(session, afterSeq: from, limit: 100)
            if events.contains(where: { $0.kind == .sessionStatusIdle }) {
                guard let use = events.first(where: { $0.kind == .agentToolUse }),
                    let result = events.first(where: { $0.payload?.answeredToolUse == use.id }),
                    let next = events.first(where: { $0.kind == .spanModelRequestStart && $0.seq > result.seq }),
                    let usedAt = CreatedAtRange.instant(use.processedAt), let answeredAt = CreatedAtRange.instant(result.processedAt),
                    let resumedAt = CreatedAtRange.instant(next.processedAt)
                else { throw ValidationError("session \(session): the turn ended without a call and its result: \(events.map(\.type))") }
                return ((answeredAt.timeIntervalSince(usedAt)) * 1000, (resumedAt.timeIntervalSince(usedAt)) * 1000)
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw ValidationError("session \(session) did not finish a turn in 120 s")
    }

    /// A long poll on an empty queue, answered by an item queued while it waits.
    private func measurePickup(client: BenchClient, work: WorkQueue, environment: String) async throws -> [Double] {
        var samples: [Double] = []
        for _ in 0..<polls {
            // Drain what the sessions left queued, so the poll below finds the queue empty.
            while try await client.get("/v1/environments/\(environment)/work/poll") != .null {}
            let answered = Task { () throws -> ContinuousClock.Instant in
                _ = try await client.get("/v1/environments/\(environment)/work/poll?block_ms=999")
                return ContinuousClock.now
            }
            try await Task.sleep(for: .milliseconds(100))
            let queued = ContinuousClock.now
            try await work.ensure(environment: environment, session: SessionID.make())
            let at = try await answered.value
            samples.append((at - queued).seconds * 1000)
        }
        return samples
    }

    /// The SDK's EnvironmentWorker, unchanged; the environment key comes in the environment.
    static let workerScript = """
        import asyncio, os, sys
        from anthropic import AsyncAnthropic
        from anthropic.lib.environments import EnvironmentWorker

        async def main():
            base_url, environment_id, workdir = sys.argv[1:4]
            client = AsyncAnthropic(base_url=base_url, api_key="not-a-key")
            await EnvironmentWorker(client, environment_id=environment_id, environment_key=os.environ["BENCH_ENVIRONMENT_KEY"],
                                    workdir=workdir, max_idle=600, memory_sync_interval=None).run()

        asyncio.run(main())
        """
}
