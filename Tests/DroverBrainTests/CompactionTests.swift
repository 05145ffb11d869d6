import DroverBrain
import DroverCore
import DroverModelStub
import DroverQueue
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

/// A research run's playbook: `steps` calls of echo, each returning an abstract of about
/// `bytes` bytes, then a final message that says what the model still knows.
func researchScript(steps: Int, bytes: Int = 320, window: Int?, compactionTTFT: Int = 0) -> String {
    var yaml = "bytes_per_token: 4\n"
    if let window { yaml += "context_window: \(window)\n" }
    if compactionTTFT > 0 { yaml += "compaction: {ttft_ms: \(compactionTTFT)}\n" }
    yaml += "playbook:\n  steps:\n"
    let filler = String(repeating: "the extracted finding reads as follows ", count: bytes / 39)
    for step in 1...steps {
        yaml += "    - tool: echo\n      input: {text: \"abstract \(step) of \(steps): \(filler)\"}\n"
    }
    yaml += "  final: \"Read every abstract; the last was: {{last_result}}\"\n"
    return yaml
}

/// The agent of a long research run: a small answer budget and room for hundreds of requests.
let researchAgent = AgentSnapshot(model: "claude-research", system: "You read abstracts one by one.", maxTokens: 600, maxModelRequestsPerTurn: 1000)

extension BrainFixture {
    func runner(context: ContextPolicy) -> TurnRunner {
        var configuration = AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")
        configuration.retry.maxAttempts = 2
        configuration.retry.baseDelay = .milliseconds(10)
        configuration.retry.maxDelay = .milliseconds(50)
        return TurnRunner(
            log: log, model: AnthropicMessagesClient(configuration: configuration), hand: InProcessHand(),
            deltas: DeltaPublisher(redis: client), defaultAgent: researchAgent, context: context)
    }

    func newSession(agent: AgentSnapshot, saying text: String) async throws -> SessionID {
        let session = SessionID.make()
        try await log.create(session, agent: agent)
        _ = try await log.append(session, [NewEvent(.userMessage(UserMessage(text: text)))])
        return session
    }
}

/// The texts the echo calls were asked to return, in log order.
func echoedAbstracts(_ events: [StoredEvent]) -> [String] {
    events.filter { $0.type == "agent.tool_use" }.compactMap {
        $0.value.objectValue?["input"]?.objectValue?["text"]?.stringValue.map { String($0.prefix(while: { $0 != ":" })) }
    }
}

/// Every compaction names a kept event that precedes it, has a summary, and follows its request's end.
func expectWholeCompactions(_ events: [StoredEvent], sourceLocation: SourceLocation = #_sourceLocation) {
    let ids = Set(events.map(\.id))
    for (index, event) in events.enumerated() where event.type == "agent.thread_context_compacted" {
        let fields = event.value.objectValue ?? [:]
        #expect(fields["summary"]?.stringValue?.isEmpty == false, "a compaction without its summary: \(event.json)", sourceLocation: sourceLocation)
        if let kept = fields["first_kept_event_id"]?.stringValue {
            #expect(ids.contains(kept) && kept < event.id, "kept event \(kept) is not an earlier event", sourceLocation: sourceLocation)
        }
        let end = index > 0 ? events[index - 1] : nil
        #expect(
            end?.type == "span.model_request_end" && end?.value.objectValue?["is_error"] == .bool(false),
            "a compaction not appended with its request's end", sourceLocation: sourceLocation)
    }
}

@Suite("Context compaction")
struct CompactionTests {
    static let window = 6000

    @Test("the settings: one window or one per model, a margin, a limit, off; bad values name the variable and the fix")
    func settings() throws {
        let policy = try ContextPolicy.fromEnvironment([
            "DROVER_CONTEXT_WINDOW": "claude-opus-4-1=1000000, *=150_000", "DROVER_COMPACTION_MARGIN": "20%", "DROVER_COMPACTION_LIMIT": "5",
        ])
        #expect(policy.window(for: "claude-opus-4-1") == 1_000_000 && policy.window(for: "claude-sonnet-4-5") == 150_000)
        #expect(policy.inputBudget(model: "claude-sonnet-4-5", maxTokens: 4096) == 150_000 - 30_000 - 4096)
        #expect(policy.limit == 5 && policy.enabled)
        #expect(try ContextPolicy.fromEnvironment(["DROVER_COMPACTION": "off"]).enabled == false)
        #expect(try ContextPolicy.fromEnvironment([:]) == ContextPolicy())
        for (key, value) in [
            ("DROVER_CONTEXT_WINDOW", "lots"), ("DROVER_CONTEXT_WINDOW", "=5000"), ("DROVER_CONTEXT_WINDOW", "99999999999999999999"),
            ("DROVER_COMPACTION_MARGIN", "90"), ("DROVER_COMPACTION_LIMIT", "0"), ("DROVER_COMPACTION", "maybe"),
        ] {
            #expect(throws: FieldError.self, "\(key)=\(value)") { try ContextPolicy.fromEnvironment([key: value]) }
            do {
                _ = try ContextPolicy.fromEnvironment([key: value])
            } catch {
                #expect(error.field == key && error.fix?.isEmpty == false, "\(error)")
            }
        }
    }

    @Test("docs/compaction.md quotes the prompt and the continuation as the brain sends them")
    func documentedWords() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("docs/compaction.md"), encoding: .utf8)
        #expect(page.contains("<!-- prompt -->\n> " + ContextCompaction.prompt + "\n"))
        #expect(page.contains("<!-- continuation -->\n> " + ContextCompaction.continuationOpening + "\n"))
    }

    @Test("a 300-step research run compacts several times, finishes, and no request passes the model's window")
    func longRun() async throws {
        try await withBrain(script: researchScript(steps: 300, window: Self.window)) { brain in
            let session = try await brain.newSession(agent: researchAgent, saying: "Review the 300 abstracts in the corpus.")
            let fence = try await brain.log.takeFence(session)
            let outcome = try await brain.runner(context: ContextPolicy(defaultWindow: Self.window)).run(session: session, fence: fence)
            #expect(outcome == TurnOutcome(.idle(.endTurn), modelRequests: 301))

            let events = try await brain.log.read(session, limit: 100_000)
            expectWireShapes(events)
            expectWholeCompactions(events)
            let compactions = events.filter { $0.type == "agent.thread_context_compacted" }
            #expect(compactions.count >= 5, "compacted \(compactions.count) times")
            // Every step was taken once, in order: the summaries carried the run's progress.
            #expect(echoedAbstracts(events) == (1...300).map { "abstract \($0) of 300" })
            // The log keeps every original event: each call has its one result.
            #expect(events.filter { $0.type == "agent.tool_result" }.count == 300)
            let reply = try #require(events.last { $0.type == "agent.message" }?.json)
            #expect(reply.contains("the last was: abstract 300 of 300"), "\(reply)")

            // The model counted every request, compactions included, and refused none.
            let requests = await brain.model.requests()
            #expect(requests.count == 301 + compactions.count)
            #expect(requests.filter(\.compaction).count == compactions.count)
            #expect(requests.allSatisfy { !$0.refused && $0.inputTokens < Self.window }, "largest: \(requests.map(\.inputTokens).max() ?? 0)")
            let reported = events.compactMap { $0.type == "span.model_request_end" ? $0.value.objectValue?["model_usage"]?.objectValue : nil }
            #expect(reported.count == requests.count)
            #expect(reported.allSatisfy { ($0["input_tokens"]?.intValue ?? .max) < Self.window })

            // The context a fresh worker rebuilds from the log starts at the last summary.
            let rebuilt = ContextBuilder.messages(from: events)
            let last = try #require(compactions.last?.value.objectValue?["summary"]?.stringValue)
            #expect(rebuilt.first?.content.first == .text(ContextCompaction.continuation(summary: last)))
            let usage = try #require(events.last { $0.type == "session.usage" }?.value.objectValue?["usage"]?.objectValue)
            #expect(usage["input_tokens"]?.intValue == requests.reduce(0) { $0 + $1.inputTokens }, "compactions' tokens count in the usage")
        }
    }

    @Test("a model that refuses a prompt as too long teaches the brain its real window: the run compacts to fit and finishes")
    func learnsFromRefusal() async throws {
        try await withBrain(script: researchScript(steps: 120, window: Self.window)) { brain in
            let session = try await brain.newSession(agent: researchAgent, saying: "Review the 120 abstracts in the corpus.")
            let fence = try await brain.log.takeFence(session)
            // Configured for a window ten times the model's.
            let outcome = try await brain.runner(context: ContextPolicy(defaultWindow: Self.window * 10)).run(session: session, fence: fence)
            #expect(outcome.ending == .idle(.endTurn))
            let events = try await brain.log.read(session, limit: 100_000)
            expectWireShapes(events)
            expectWholeCompactions(events)
            #expect(!events.contains { $0.type == "session.error" })
            #expect(echoedAbstracts(events) == (1...120).map { "abstract \($0) of 120" })
            #expect(events.filter { $0.type == "agent.thread_context_compacted" }.count >= 2)
            // One refusal taught it; none followed.
            let requests = await brain.model.requests()
            #expect(requests.filter(\.refused).count == 1)
            let failedEnds = events.filter { $0.type == "span.model_request_end" && $0.value.objectValue?["is_error"] == .bool(true) }
            #expect(failedEnds.count == 1)
            #expect(outcome.modelRequests == 122, "120 calls, the final answer, and the refused request")
        }
    }

    @Test("with compaction off, the same run outgrows the window and the model refuses it")
    func withoutCompaction() async throws {
        try await withBrain(script: researchScript(steps: 300, window: Self.window)) { brain in
            let session = try await brain.newSession(agent: researchAgent, saying: "Review the 300 abstracts in the corpus.")
            let fence = try await brain.log.takeFence(session)
            let outcome = try await brain.runner(context: ContextPolicy(defaultWindow: Self.window, enabled: false)).run(
                session: session, fence: fence)
            #expect(outcome.ending == .idle(.retriesExhausted))
            let events = try await brain.log.read(session, limit: 100_000)
            #expect(!events.contains { $0.type == "agent.thread_context_compacted" })
            let error = try #require(events.last { $0.type == "session.error" }?.value.objectValue?["error"]?.objectValue)
            #expect(error["message"]?.stringValue?.contains("prompt is too long") == true, "\(error)")
            #expect(echoedAbstracts(events).count < 300)
        }
    }

    @Test("compactions in a row that cannot make the context fit stop the turn with compaction_limit_reached_error; a new message starts afresh")
    func limitReached() async throws {
        // A system prompt larger than the brain's window: no summary can make a request fit.
        let agent = AgentSnapshot(
            model: "claude-research", system: String(repeating: "Read with care. ", count: 1500), maxTokens: 600, maxModelRequestsPerTurn: 50)
        try await withBrain(script: researchScript(steps: 3, window: nil)) { brain in
            let session = try await brain.newSession(agent: agent, saying: "Review the abstracts.")
            let runner = brain.runner(context: ContextPolicy(defaultWindow: 5000, limit: 3))
            let outcome = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome.ending == .idle(.retriesExhausted))
            var events = try await brain.log.read(session, limit: 10_000)
            expectWireShapes(events)
            expectWholeCompactions(events)
            #expect(events.filter { $0.type == "agent.thread_context_compacted" }.count == 3)
            #expect(!events.contains { $0.type == "agent.tool_use" || $0.type == "agent.message" })
            let error = try #require(events.last { $0.type == "session.error" }?.value.objectValue?["error"]?.objectValue)
            #expect(error["type"] == .string("compaction_limit_reached_error"))
            #expect(error["retry_status"] == .object(["type": .string("exhausted")]))
            let idle = try #require(events.last?.value.objectValue)
            #expect(idle["stop_reason"] == .object(["type": .string("retries_exhausted")]))

            _ = try await brain.log.append(session, [NewEvent(.userMessage(UserMessage(text: "Try once more.")))])
            _ = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
            events = try await brain.log.read(session, limit: 10_000)
            #expect(events.filter { $0.type == "agent.thread_context_compacted" }.count == 6, "the new turn had its own three tries")
        }
    }

    @Test("kill -9 a worker while the model writes a summary: the log holds no part of that compaction, and the next worker finishes the run")
    func killDuringCompaction() async throws {
        try await withBrain(script: researchScript(steps: 80, window: Self.window, compactionTTFT: 1500)) { brain in
            var environment = brain.processEnvironment
            environment["DROVER_CONTEXT_WINDOW"] = String(Self.window)
            let directory = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent()
            func startWorker(_ name: String) throws -> ChildProcess {
                try ChildProcess(
                    executable: droverBinary.path,
                    arguments: ["worker", "--concurrency", "1", "--lease-seconds", "2", "--drain-seconds", "2", "--hands", "in-process"],
                    environment: environment, outputPath: directory.appendingPathComponent("\(name).log").path)
            }
            let session = try await brain.newSession(agent: researchAgent, saying: "Review the 80 abstracts in the corpus.")
            try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)

            let first = try startWorker("a")
            let summarising = try await eventually(within: .seconds(120), polling: .milliseconds(20)) {
                await brain.model.requests().contains(where: \.compaction)
            }
            #expect(summarising, "no compaction request reached the model")
            await first.kill()
            // What the killed worker left: the compaction's request start, and nothing of its summary.
            var events = try await brain.log.read(session, limit: 100_000)
            #expect(events.last?.type == "span.model_request_start", "last: \(events.last?.json ?? "none")")
            #expect(!events.contains { $0.type == "agent.thread_context_compacted" })
            let cutOff = try #require(events.last?.id)

            let second = try startWorker("b")
            let idle = try await eventually(within: .seconds(180), polling: .milliseconds(50)) {
                try await brain.types(session).last == "session.status_idle"
            }
            #expect(idle, "the run did not finish after the kill")
            await second.terminate(grace: .seconds(15))

            events = try await brain.log.read(session, limit: 100_000)
            expectWireShapes(events)
            expectWholeCompactions(events)
            // The request the kill cut off is closed once, as failed; the summary was asked for again.
            let closing = events.filter { $0.value.objectValue?["model_request_start_id"]?.stringValue == cutOff }
            #expect(closing.count == 1 && closing.first?.value.objectValue?["is_error"] == .bool(true))
            let compactions = events.filter { $0.type == "agent.thread_context_compacted" }
            #expect(compactions.count >= 1)
            #expect(await brain.model.requests().filter(\.compaction).count == compactions.count + 1)
            #expect(echoedAbstracts(events) == (1...80).map { "abstract \($0) of 80" })
            #expect(events.last { $0.type == "agent.message" }?.json.contains("the last was: abstract 80 of 80") == true)
            #expect(await brain.model.requests().allSatisfy { !$0.refused && $0.inputTokens < Self.window })
        }
    }
}
