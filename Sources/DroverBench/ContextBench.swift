import ArgumentParser
import DroverBrain
import DroverCore
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation

struct ContextBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context",
        abstract: "Building the model's context in a long session: rebuilt from the whole log per request, or kept up as events arrive.",
        discussion: """
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
            print(try encodeJSON(report))
            await redisServer.stop()
        }
    }
}
