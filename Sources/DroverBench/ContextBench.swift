import ArgumentParser
import DroverBrain
import DroverCore
import DroverModelStub
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation

struct ContextBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context",
        abstract:
            "A long session's context: request size in tokens by turn with compaction on and off, and the cost of building it from the log.",
        discussion: """
            Request sizes: a research run of --turns model requests (each a tool call returning
            --result-bytes, then a final answer) runs through the turn runner against the scripted
            model, once with compaction for a --window-token window and once without. It reports
            each request's input tokens as the model counted them, sampled by turn, with the
            compactions, the largest request and the tokens of all requests together.

            Building: 
            Appends a research-run-like session to a real log (embedded redis-server): a user message,
            then --requests rounds of agent.message, agent.tool_use, agent.tool_result (--result-bytes
            of output) and the model-request spans. It then replays the run's model requests: before
            request k, the context of everything so far is built either from the whole log (what each
            request used to cost) or by adding the events since request k-1 to a kept conversation
            (what the turn runner does). Both ways --runs times, alternating; medians.
            """
    )

    @Option(help: "Model requests in the session.") var requests = 500
    @Option(help: "Bytes of output in each tool result.") var resultBytes = 2000
    @Option(help: "Measured runs of each way.") var runs = 5
    @Option(help: "Model requests of the research run measured with compaction on and off (0 leaves it out).") var turns = 1000
    @Option(help: "The model's context window in tokens for that run.") var window = 200_000

    func run() async throws {
        try await reportingErrors {
            let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-context-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let redisServer = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory.appendingPathComponent("redis")))
            let redis = try await RedisClient.connect(redisServer.url, options: RedisClientOptions())
            defer { redis.close() }
            let log = SessionLog(redis: redis, database: nil)
            let session = SessionID.make()
            try await log.create(session)
            let output = String(repeating: "0123456789abcdef\n", count: max(1, resultBytes / 17))
            // Where each model request starts: the number of events before its span.
            var requestStarts: [Int] = []
            var count = 0
            func append(_ events: [SessionEventPayload]) async throws {
                _ = try await log.append(session, events)
                count += events.count
            }
            try await append([.userMessage(UserMessage(text: "Analyse the shipped CSV."))])
            for round in 0..<requests {
                requestStarts.append(count)
                try await append([.spanModelRequestStart])
                let start = SessionLog.eventID(session, seq: Int64(count))
                try await append([
                    .agentMessage(AgentMessage(content: [.text("Step \(round): next I look at column \(round % 7).")])),
                    .agentToolUse(AgentToolUse(name: "bash", input: ["command": .string("python3 analyse.py --step \(round)")])),
                    .spanModelRequestEnd(SpanModelRequestEnd(modelRequestStartId: start, modelUsage: ModelUsage())),
                ])
                let use = SessionLog.eventID(session, seq: Int64(count - 1))
                try await append([.agentToolResult(AgentToolResult(toolUseId: use, content: [.text(output)], isError: false))])
            }
            let events = try await log.wake(session).events

            var rebuilt: [Double] = [], kept: [Double] = [], whole: [Double] = []
            var checksum = (0, 0)
            // A stored event keeps its decoded form, so every measurement starts from events
            // as a read of the log returns them: nothing decoded yet.
            func fresh(_ events: some Sequence<StoredEvent>) -> [StoredEvent] {
                events.map { StoredEvent(session: $0.session, seq: $0.seq, type: $0.type, json: $0.json) }
            }
            for _ in 0..<runs {
                let clock = ContinuousClock()
                let prefixes = requestStarts.map { fresh(events[..<$0]) }
                let rebuild = clock.measure {
                    for prefix in prefixes { checksum.0 &+= ContextBuilder.messages(from: prefix).count }
                }
                let keptEvents = fresh(events)
                let incremental = clock.measure {
                    var conversation = ContextBuilder.Conversation()
                    var added = 0
                    for start in requestStarts {
                        conversation.add(contentsOf: keptEvents[added..<start])
                        added = start
                        checksum.1 &+= conversation.messages.count
                    }
                }
                let wholeEvents = fresh(events)
                whole.append(clock.measure { checksum.0 &+= ContextBuilder.messages(from: wholeEvents).count * 0 }.seconds * 1000)
                rebuilt.append(rebuild.seconds * 1000)
                kept.append(incremental.seconds * 1000)
            }
            guard checksum.0 == checksum.1 else { throw ValidationError("the two ways built different contexts") }
            let rebuiltMedian = percentile(rebuilt.sorted(), 50), keptMedian = percentile(kept.sorted(), 50)
            let report: JSONValue = .object([
                "benchmark": "context", "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                "events": .number(Double(events.count)), "model_requests": .number(Double(requestStarts.count)),
                "log_bytes": .number(Double(events.reduce(0) { $0 + $1.json.utf8.count })), "runs": .number(Double(runs)),
                "rebuilt_per_request_total_ms_p50": .number(round3(rebuiltMedian)),
                "kept_conversation_total_ms_p50": .number(round3(keptMedian)),
                "rebuild_of_whole_log_ms_p50": .number(round3(percentile(whole.sorted(), 50))),
                "ratio_rebuilt_over_kept": .number(round3(keptMedian > 0 ? rebuiltMedian / keptMedian : 0)),
            ])
            var combined = report.objectValue ?? [:]
            if turns > 0 {
                combined["request_tokens"] = try await requestSizes(redis: redis)
            }
            print(try encodeJSON(JSONValue.object(combined)))
            await redisServer.stop()
        }
    }

    /// One research run per setting through the turn runner: every model request's input tokens
    /// as the scripted model counted them, in turn order, and the compactions among them.
    func requestSizes(redis: RedisClient) async throws -> JSONValue {
        let filler = String(repeating: "a finding worth keeping, ", count: max(1, resultBytes / 25))
        var yaml = "bytes_per_token: 4\nplaybook:\n  steps:\n"
        for step in 1...turns {
            yaml += "    - tool: echo\n      input: {text: \"abstract \(step): \(filler)\"}\n"
        }
        yaml += "  final: \"Read them all; the last was {{last_result}}\"\n"
        let model = try await ScriptedModelServer.start(script: try ModelScript.parse(yaml: yaml, file: "bench context"))
        defer { Task { await model.stop() } }
        let agent = AgentSnapshot(
            model: "claude-bench", system: "You read abstracts one by one.", maxTokens: 4096, maxModelRequestsPerTurn: turns + 10)
        let log = SessionLog(redis: redis, database: nil)
        var runs: [String: (tokens: [Int], compactions: Int, seconds: Double)] = [:]
        for compaction in [true, false] {
            var configuration = AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")
            configuration.retry.maxAttempts = 1
            let runner = TurnRunner(
                log: log, model: AnthropicMessagesClient(configuration: configuration), hand: InProcessHand(),
                deltas: DeltaPublisher(redis: redis), defaultAgent: agent,
                context: ContextPolicy(defaultWindow: window, enabled: compaction))
            let session = SessionID.make()
            try await log.create(session, agent: agent)
            _ = try await log.append(session, [NewEvent(.userMessage(UserMessage(text: "Read the \(turns) abstracts.")))])
            let started = ContinuousClock.now
            let outcome = try await runner.run(session: session, fence: try await log.takeFence(session))
            let seconds = (ContinuousClock.now - started).seconds
            guard outcome.ending == .idle(.endTurn) else {
                throw ValidationError("the run with compaction \(compaction ? "on" : "off") ended \(outcome.ending)")
            }
            let events = try await log.wake(session).events
            var tokens: [Int] = []
            var compactions = 0
            for (index, event) in events.enumerated() where event.kind == .spanModelRequestEnd {
                guard case .spanModelRequestEnd(let end)? = event.payload else { continue }
                if index + 1 < events.count, events[index + 1].kind == .agentThreadContextCompacted {
                    compactions += 1
                } else {
                    tokens.append(end.modelUsage.inputTokens)
                }
            }
            runs[compaction ? "on" : "off"] = (tokens, compactions, seconds)
        }
        let on = runs["on"]!, off = runs["off"]!
        let step = max(1, on.tokens.count / 20)
        var samples = Array(stride(from: 0, to: on.tokens.count, by: step))
        if samples.last != on.tokens.count - 1 { samples.append(on.tokens.count - 1) }
        func summary(_ run: (tokens: [Int], compactions: Int, seconds: Double)) -> JSONValue {
            .object([
                "compactions": .number(Double(run.compactions)), "max_request_tokens": .number(Double(run.tokens.max() ?? 0)),
                "total_input_tokens": .number(Double(run.tokens.reduce(0, +))), "requests": .number(Double(run.tokens.count)),
                "seconds": .number(round3(run.seconds)),
            ])
        }
        let totalOn = Double(on.tokens.reduce(0, +)), totalOff = Double(off.tokens.reduce(0, +))
        return .object([
            "turns": .number(Double(turns)), "window": .number(Double(window)), "result_bytes": .number(Double(resultBytes)),
            "compaction_on": summary(on), "compaction_off": summary(off),
            "ratio_total_tokens_off_over_on": .number(round3(totalOn > 0 ? totalOff / totalOn : 0)),
            "by_turn": .array(
                samples.map { index in
                    .object([
                        "turn": .number(Double(index + 1)), "on": .number(Double(on.tokens[index])),
                        "off": .number(Double(index < off.tokens.count ? off.tokens[index] : 0)),
                    ])
                }),
        ])
    }
}
