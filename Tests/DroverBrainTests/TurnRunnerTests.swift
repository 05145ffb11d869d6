import DroverBrain
import DroverCore
import DroverDatabase
import DroverModelStub
import DroverQueue
import DroverRedis
import DroverSessionLog
import DroverTesting
import DroverTools
import Foundation
import Testing

/// A real Redis, a real SQLite file, and the scripted model over HTTP.
struct BrainFixture {
    let client: RedisClient
    let server: RedisServerFixture
    let log: SessionLog
    let database: MirrorDatabase
    let model: ScriptedModelServer

    func runner(maxAttempts: Int = 4, hand: any Hand = InProcessHand(), eagerHands: Bool = false) -> TurnRunner {
        var configuration = AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")
        configuration.retry.maxAttempts = maxAttempts
        configuration.retry.baseDelay = .milliseconds(10)
        configuration.retry.maxDelay = .milliseconds(50)
        return TurnRunner(
            log: log, model: AnthropicMessagesClient(configuration: configuration), hand: hand,
            deltas: DeltaPublisher(redis: client), defaultAgent: AgentSnapshot(model: "claude-test"), eagerHands: eagerHands
        )
    }

    func newSession(saying text: String) async throws -> SessionID {
        let session = SessionID.make()
        try await log.create(session, agent: AgentSnapshot(model: "claude-test", system: "You grade code."))
        _ = try await log.append(
            session, [NewEvent(.userMessage(UserMessage(text: text)))])
        return session
    }

    func types(_ session: SessionID) async throws -> [String] {
        try await log.read(session, limit: 10_000).map(\.type)
    }

    /// The environment a `drover worker` or `drover recorder` process needs to join this fixture.
    var processEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["DROVER_REDIS_URL"] = server.url.description
        environment["DROVER_DB"] = database.path
        environment["ANTHROPIC_BASE_URL"] = model.baseURL
        environment["ANTHROPIC_API_KEY"] = "scripted"
        return environment
    }
}

/// `appendFsync: "always"` for tests that kill Redis and count on every acknowledged write: with
/// `everysec`, Redis answers before writing its AOF while a slow fsync is under way, and a kill -9
/// then loses those writes (Redis' documented window of up to two seconds).
func withBrain<T>(script yaml: String, appendFsync: String = "everysec", _ body: (BrainFixture) async throws -> T) async throws -> T {
    try await withRedisClient(poolSize: 8, appendFsync: appendFsync) { client, server in
        let path = temporaryDatabasePath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let database = try MirrorDatabase(path: path)
        let model = try await ScriptedModelServer.start(script: try ModelScript.parse(yaml: yaml), recordingRequests: true)
        do {
            let result = try await body(
                BrainFixture(client: client, server: server, log: SessionLog(redis: client, database: database), database: database, model: model))
            await model.stop()
            return result
        } catch {
            await model.stop()
            throw error
        }
    }
}

/// Every event decodes as the SDK's shape, so a wrong field name or type fails the test.
func expectWireShapes(_ events: [StoredEvent], sourceLocation: SourceLocation = #_sourceLocation) {
    for event in events {
        do {
            _ = try JSONDecoder().decode(SessionEvent.self, from: Data(event.json.utf8))
        } catch {
            Issue.record("event \(event.seq) \(event.type) does not match the wire format: \(error)\n\(event.json)", sourceLocation: sourceLocation)
        }
    }
}

@Suite("Turn runner against the scripted model")
struct TurnRunnerTests {
    @Test("a turn with a tool call runs end to end, in the SDK's event shapes")
    func toolTurn() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "Let me check."
                    tool_use: {name: echo, input: {text: "graded: 7/10"}}
                  - text: "The grade is 7/10."
                """
        ) { brain in
            let session = try await brain.newSession(saying: "Grade submission 7")
            let fence = try await brain.log.takeFence(session)
            let outcome = try await brain.runner().run(session: session, fence: fence)
            #expect(outcome == TurnOutcome(.idle(.endTurn), modelRequests: 2))
            let events = try await brain.log.read(session, limit: 1000)
            #expect(
                events.map(\.type) == [
                    "user.message", "session.status_running",
                    "span.model_request_start", "agent.message", "agent.tool_use", "span.model_request_end", "agent.tool_result",
                    "span.model_request_start", "agent.message", "span.model_request_end",
                    "session.usage", "session.status_idle",
                ])
            expectWireShapes(events)
            let use = try #require(events.first { $0.type == "agent.tool_use" })
            let result = try #require(events.first { $0.type == "agent.tool_result" }?.value.objectValue)
            #expect(result["tool_use_id"]?.stringValue == use.id)
            #expect(result["is_error"] == .bool(false))
            #expect(result["content"] == .array([.object(["type": .string("text"), "text": .string("graded: 7/10")])]))
            let reply = try #require(events.last { $0.type == "agent.message" }?.value.objectValue)
            #expect(reply["content"] == .array([.object(["type": .string("text"), "text": .string("[scripted] The grade is 7/10.")])]))
            let usage = try #require(events.last { $0.type == "session.usage" }?.value.objectValue?["usage"]?.objectValue)
            #expect((usage["input_tokens"]?.intValue ?? 0) > 0 && (usage["output_tokens"]?.intValue ?? 0) > 0)
            let idle = try #require(events.last?.value.objectValue)
            #expect(idle["stop_reason"] == .object(["type": .string("end_turn")]))
            // Nothing left to do: a second run is a no-op.
            let again = try await brain.runner().run(session: session, fence: try await brain.log.takeFence(session))
            #expect(again.ending == .nothingToDo)
        }
    }

    @Test("streamed deltas are published on the session's channel, in order, for previews")
    func deltasPublished() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "one two three four five"
                    ttft_ms: 400
                    tokens_per_second: 50
                """
        ) { brain in
            let session = try await brain.newSession(saying: "stream please")
            guard case .unix(let socket) = brain.server.url.endpoint else {
                Issue.record("expected a unix socket")
                return
            }
            let capture = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent().appendingPathComponent("deltas.txt").path
            let subscriber = try ChildProcess(
                executable: "/usr/bin/redis-cli", arguments: ["-s", socket, "--no-raw", "SUBSCRIBE", DeltaPublisher.channel(session)],
                outputPath: capture
            )
            defer { subscriber.signal(SIGKILL) }
            try await Task.sleep(for: .milliseconds(200))  // subscribed before the first token (ttft 400 ms)
            let outcome = try await brain.runner().run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome.ending == .idle(.endTurn))
            try await Task.sleep(for: .milliseconds(200))
            let published = (try? String(contentsOfFile: capture, encoding: .utf8)) ?? ""
            let pieces = published.split(separator: "\n").compactMap { line -> String? in
                guard let start = line.firstIndex(of: "{") else { return nil }
                let json = String(line[start...]).replacingOccurrences(of: "\\\"", with: "\"").trimmingCharacters(
                    in: CharacterSet(charactersIn: "\""))
                return (try? JSONValue.parse(json))?.objectValue?["text"]?.stringValue
            }
            #expect(pieces.joined() == "[scripted] one two three four five", "\(published)")
        }
    }

    @Test("a tool use left without a result by a crash gets exactly one error result and is not run again")
    func danglingToolUse() async throws {
        try await withBrain(
            script: """
                turns:
                  - tool_use: {name: echo, input: {text: "side effect"}}
                  - text: "Recovered."
                """
        ) { brain in
            let session = try await brain.newSession(saying: "go")
            let crashed = try await brain.log.takeFence(session)
            _ = try await brain.log.append(
                session,
                [
                    NewEvent(.sessionStatusRunning), NewEvent(.spanModelRequestStart),
                    NewEvent(.agentToolUse(AgentToolUse(name: "echo", input: ["text": .string("side effect")]))),
                ], fence: crashed)
            let fence = try await brain.log.takeFence(session)
            let outcome = try await brain.runner().run(session: session, fence: fence)
            #expect(outcome.ending == .idle(.endTurn))
            let events = try await brain.log.read(session, limit: 1000)
            let results = events.filter { $0.type == "agent.tool_result" }
            #expect(results.count == 1)
            let result = try #require(results.first?.value.objectValue)
            #expect(result["is_error"] == .bool(true))
            #expect(TurnRunner.crashInterruption.contains("worker crash"))
            #expect(results.first?.json.contains(TurnRunner.crashInterruption) == true)
            #expect(
                !events.contains { $0.type == "agent.tool_result" && $0.json.contains("\"side effect\"") && !$0.json.contains("is_error\":true") })
            #expect(events.last?.type == "session.status_idle")
            // The cut-off model request is closed, as failed, exactly once.
            let starts = events.filter { $0.type == "span.model_request_start" }.map(\.id)
            let ends = events.filter { $0.type == "span.model_request_end" }.compactMap {
                $0.value.objectValue?["model_request_start_id"]?.stringValue
            }
            #expect(Set(starts) == Set(ends) && ends.count == starts.count)
            expectWireShapes(events)
            // The stale writer is fenced out.
            await #expect(throws: SessionLogError.self) {
                try await brain.log.append(session, [NewEvent(.agentMessage(AgentMessage(content: [])))], fence: crashed)
            }
        }
    }

    @Test("a 529 burst is recorded as session.status_rescheduled, then the turn succeeds")
    func overloadThenSuccess() async throws {
        try await withBrain(
            script: """
                turns:
                  - fault: {status: 529, times: 2}
                    text: "After the storm."
                """
        ) { brain in
            let session = try await brain.newSession(saying: "hello")
            let outcome = try await brain.runner().run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome.ending == .idle(.endTurn))
            let types = try await brain.types(session)
            #expect(types.filter { $0 == "session.status_rescheduled" }.count == 2)
            #expect(types.suffix(4) == ["agent.message", "span.model_request_end", "session.usage", "session.status_idle"])
            #expect(types.firstIndex(of: "session.status_rescheduled")! < types.lastIndex(of: "session.status_running")!)
            expectWireShapes(try await brain.log.read(session, limit: 1000))
        }
    }

    @Test("exhausted retries end the turn with retries_exhausted and a session.error")
    func retriesExhausted() async throws {
        try await withBrain(
            script: """
                turns:
                  - fault: {status: 529}
                    text: "never"
                """
        ) { brain in
            let session = try await brain.newSession(saying: "hello")
            let outcome = try await brain.runner(maxAttempts: 3).run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome.ending == .idle(.retriesExhausted))
            let events = try await brain.log.read(session, limit: 1000)
            #expect(events.filter { $0.type == "session.status_rescheduled" }.count == 2)
            let error = try #require(events.first { $0.type == "session.error" }?.value.objectValue?["error"]?.objectValue)
            #expect(error["retry_status"] == .object(["type": .string("exhausted")]))
            #expect(events.last?.value.objectValue?["stop_reason"] == .object(["type": .string("retries_exhausted")]))
            #expect(!events.contains { $0.type == "agent.message" })
            expectWireShapes(events)
        }
    }

    @Test("a connection dropped mid-stream is retried as rescheduled, and no partial message is appended")
    func droppedStream() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "This answer never arrives whole."
                    drop_after_bytes: 300
                """
        ) { brain in
            let session = try await brain.newSession(saying: "hello")
            let outcome = try await brain.runner(maxAttempts: 2).run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome.ending == .idle(.retriesExhausted))
            let events = try await brain.log.read(session, limit: 1000)
            #expect(events.filter { $0.type == "session.status_rescheduled" }.count == 1)
            #expect(!events.contains { $0.type == "agent.message" })
            let ends = events.filter { $0.type == "span.model_request_end" }
            #expect(ends.count == 1 && ends[0].json.contains("\"is_error\":true"))
            #expect(events.first { $0.type == "session.error" }?.json.contains("partial") == true)
            expectWireShapes(events)
        }
    }

    @Test("the inbox appends before it queues a turn; an interrupt alone queues none; a second message folds into the queued turn")
    func inbox() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "never asked: no worker runs here"
                """
        ) { brain in
            let session = SessionID.make()
            try await brain.log.create(session)
            let queue = TaskQueue(redis: brain.client)
            let inbox = SessionInbox(log: brain.log, queue: queue)
            let interrupt = try await inbox.send([NewEvent(.userInterrupt(UserInterrupt()))], to: session)
            #expect(interrupt.turn == nil && interrupt.appended.firstSeq == 1)
            #expect(try await queue.stats(TurnQueue.defaultName).ready == 0)
            let message = NewEvent(.userMessage(UserMessage(text: "hi")))
            let first = try await inbox.send([message], to: session, clientKey: "k1")
            #expect(first.turn?.outcome == .enqueued && first.appended.firstSeq == 2)
            let second = try await inbox.send([message], to: session)
            #expect(second.turn?.outcome == .deduplicated && second.appended.firstSeq == 3)
            let resent = try await inbox.send([message], to: session, clientKey: "k1")
            #expect(resent.appended.duplicate && resent.appended.firstSeq == 2)
            #expect(try await queue.stats(TurnQueue.defaultName).ready == 1)
            #expect(try await brain.types(session) == ["user.interrupt", "user.message", "user.message"])
        }
    }

    /// What the session was created with, stored so that it cannot be read back.
    enum Unreadable: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case agent, environment, unhonourableEnvironment

        var testDescription: String { rawValue }
        var agent: String? { self == .agent ? #"{"model": 42}"# : nil }
        var environment: String? {
            switch self {
            case .agent: nil
            case .environment: #"{"type": "cloud", "packages": "#
            case .unhonourableEnvironment: #"{"type": "cloud", "packages": {"npm": ["left-pad"]}}"#
            }
        }
        var outcome: TurnOutcome.Ending { .terminated(self == .agent ? .agent : .environment) }
        var mention: String { self == .agent ? "at agent.model" : "environment config cannot be read" }
    }

    @Test(
        "a stored agent or environment that cannot be read ends the session with a session.error; no other agent or environment runs in its place",
        arguments: Unreadable.allCases)
    func unreadable(_ stored: Unreadable) async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "a default agent answered"
                """
        ) { brain in
            let session = SessionID.make()
            try await brain.log.create(session, agentJSON: stored.agent, environmentJSON: stored.environment)
            _ = try await brain.log.append(
                session, [NewEvent(.userMessage(UserMessage(text: "hi")))])
            let outcome = try await brain.runner().run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome.ending == stored.outcome && outcome.modelRequests == 0)
            let events = try await brain.log.read(session, limit: 100)
            #expect(events.map(\.type) == ["user.message", "session.error", "session.status_terminated"], "\(events.map(\.type))")
            #expect(events[1].json.contains("unknown_error") && events[1].json.contains(stored.mention), "\(events[1].json)")
            #expect(!events.contains { $0.json.contains("a default agent answered") })
            // A turn queued again finds the session ended and does nothing.
            let again = try await brain.runner().run(session: session, fence: try await brain.log.takeFence(session))
            #expect(again.ending == .nothingToDo)
            expectWireShapes(events)
        }
    }

    @Test("user.interrupt during an hour-long tool call stops it without waiting for the tool")
    func interrupt() async throws {
        try await withBrain(
            script: """
                turns:
                  - tool_use: {name: sleep, input: {seconds: 3600}}
                  - text: "unreachable"
                """
        ) { brain in
            let session = try await brain.newSession(saying: "wait")
            let fence = try await brain.log.takeFence(session)
            let runner = brain.runner()
            let running = Task { try await runner.run(session: session, fence: fence) }
            #expect(try await eventually(within: .seconds(60)) { try await brain.types(session).contains("agent.tool_use") })
            _ = try await brain.log.append(session, [NewEvent(.userInterrupt(UserInterrupt()))])
            // The tool would sleep an hour: the turn ending at all is the interrupt working. A
            // generous deadline keeps a broken interrupt from hanging the suite.
            let ended = try await finishing(within: .seconds(120)) { try await running.value }
            #expect(ended.ending == .interrupted)
            let events = try await brain.log.read(session, limit: 1000)
            let result = try #require(events.first { $0.type == "agent.tool_result" })
            #expect(result.json.contains(TurnRunner.userInterruption))
            #expect(events.last?.type == "session.status_idle")
            #expect(!events.contains { $0.type == "agent.message" })
            expectWireShapes(events)
        }
    }
}

@Suite("OpenAI-compatible client against the scripted model")
struct OpenAICompatibleTests {
    @Test("a tool turn runs end to end over chat completions")
    func toolTurn() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "Checking."
                    tool_use: {name: echo, input: {text: "from a local model"}}
                  - text: "Finished."
                """
        ) { brain in
            let runner = TurnRunner(
                log: brain.log, model: OpenAICompatibleClient(configuration: OpenAICompatibleConfiguration(baseURL: brain.model.baseURL)),
                hand: InProcessHand(), deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "llama")
            )
            let session = try await brain.newSession(saying: "hi")
            let outcome = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome == TurnOutcome(.idle(.endTurn), modelRequests: 2))
            let events = try await brain.log.read(session, limit: 1000)
            let result = try #require(events.first { $0.type == "agent.tool_result" })
            #expect(result.json.contains("from a local model"))
            #expect(events.last { $0.type == "agent.message" }?.json.contains("[scripted] Finished.") == true)
            let usage = events.last { $0.type == "session.usage" }?.value.objectValue?["usage"]?.objectValue
            #expect((usage?["input_tokens"]?.intValue ?? 0) > 0)
            expectWireShapes(events)
        }
    }
}

@Suite("Custom tools and budgets")
struct CustomToolTests {
    @Test("a custom tool call idles with requires_action; the client's results resume the turn, a partial set re-idles")
    func customToolRoundTrip() async throws {
        try await withBrain(
            script: """
                turns:
                  - tool_uses:
                      - {name: lookup_grade, input: {student: ana}}
                      - {name: lookup_grade, input: {student: bo}}
                  - text: "Ana has 9, Bo has 6."
                """
        ) { brain in
            let agent = AgentSnapshot(
                model: "m",
                customTools: [.init(name: "lookup_grade", description: "Looks up a grade", inputSchema: .object(["type": .string("object")]))])
            let session = SessionID.make()
            try await brain.log.create(session, agent: agent)
            _ = try await brain.log.append(
                session,
                [NewEvent(.userMessage(UserMessage(text: "grades?")))])
            let runner = brain.runner()
            let first = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
            #expect(first.ending.description == "requires_action")
            var events = try await brain.log.read(session, limit: 1000)
            let uses = events.filter { $0.type == "agent.custom_tool_use" }
            #expect(uses.count == 2)
            #expect(!events.contains { $0.type == "agent.tool_result" })
            let idle = try #require(events.last?.value.objectValue?["stop_reason"])
            #expect(idle == .object(["type": .string("requires_action"), "event_ids": .array(uses.map { .string($0.id) })]))

            func result(_ use: StoredEvent, _ text: String) throws -> [NewEvent] {
                try NewEvent.parseClientEvents(
                    #"{"events":[{"type":"user.custom_tool_result","custom_tool_use_id":"\#(use.id)","content":[{"type":"text","text":"\#(text)"}]}]}"#
                )
            }
            _ = try await brain.log.append(session, try result(uses[0], "9"))
            // Two clients racing past the API's check: the log refuses a second answer outright;
            // one for no tool use lands, and the brain leaves it out of the model's context.
            await #expect(throws: SessionLogError.alreadyAnswered(session: session.rawValue, toolUse: uses[0].id)) {
                _ = try await brain.log.append(session, try result(uses[0], "9 again"))
            }
            _ = try await brain.log.append(
                session,
                try NewEvent.parseClientEvents(
                    #"{"events":[{"type":"user.custom_tool_result","custom_tool_use_id":"sevt_nothing_1","content":[]}]}"#))
            let partial = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
            #expect(partial.ending.description == "requires_action")
            events = try await brain.log.read(session, limit: 1000)
            #expect(
                events.last?.value.objectValue?["stop_reason"]
                    == .object(["type": .string("requires_action"), "event_ids": .array([.string(uses[1].id)])]))

            _ = try await brain.log.append(session, try result(uses[1], "6"))
            let done = try await runner.run(session: session, fence: try await brain.log.takeFence(session))
            #expect(done.ending == .idle(.endTurn))
            events = try await brain.log.read(session, limit: 1000)
            #expect(events.last { $0.type == "agent.message" }?.json.contains("Ana has 9, Bo has 6.") == true)
            expectWireShapes(events)
            let blocks = ContextBuilder.messages(from: events).flatMap(\.content)
            let answered = blocks.compactMap { if case .toolResult(let id, _, _) = $0 { id } else { nil } }
            #expect(answered == uses.map(\.id), "one result per tool use reaches the model; the extra answers are left out")
        }
    }

    @Test("always_ask holds tool calls for user.tool_confirmation: allowed ones run, denied ones say why")
    func confirmations() async throws {
        try await withBrain(
            script: """
                turns:
                  - tool_uses:
                      - {name: echo, input: {text: "allowed output"}}
                      - {name: echo, input: {text: "must not run"}}
                  - text: "Done."
                """
        ) { brain in
            let toolset = AgentSnapshot.ToolsetConfig(configs: [.init(name: "echo", permissionPolicy: .init(type: "always_ask"))])
            let session = SessionID.make()
            try await brain.log.create(session, agent: AgentSnapshot(model: "m", toolset: toolset))
            _ = try await brain.log.append(
                session, [NewEvent(.userMessage(UserMessage(text: "go")))])
            let runner = brain.runner()
            #expect(try await runner.run(session: session, fence: try await brain.log.takeFence(session)).ending.description == "requires_action")
            var events = try await brain.log.read(session, limit: 1000)
            let uses = events.filter { $0.type == "agent.tool_use" }
            #expect(uses.count == 2)
            #expect(
                uses.allSatisfy {
                    $0.value.objectValue?["evaluated_permission"] == .string("ask")
                        && $0.value.objectValue?["evaluation"] == .object(["type": .string("always_ask")])
                })
            #expect(!events.contains { $0.type == "agent.tool_result" })

            func confirm(_ use: StoredEvent, _ body: String) async throws {
                _ = try await brain.log.append(
                    session, try NewEvent.parseClientEvents(#"{"events":[{"type":"user.tool_confirmation","tool_use_id":"\#(use.id)",\#(body)}]}"#))
            }
            try await confirm(uses[0], #""result":"allow""#)
            #expect(try await runner.run(session: session, fence: try await brain.log.takeFence(session)).ending.description == "requires_action")
            events = try await brain.log.read(session, limit: 1000)
            #expect(
                events.last?.value.objectValue?["stop_reason"]
                    == .object(["type": .string("requires_action"), "event_ids": .array([.string(uses[1].id)])]))

            try await confirm(uses[1], #""result":"deny","deny_message":"not on student files""#)
            #expect(try await runner.run(session: session, fence: try await brain.log.takeFence(session)).ending == .idle(.endTurn))
            events = try await brain.log.read(session, limit: 1000)
            let results = events.filter { $0.type == "agent.tool_result" }
            #expect(results.count == 2)
            #expect(results.first { $0.json.contains(uses[0].id) }?.json.contains("allowed output") == true)
            let denied = try #require(results.first { $0.json.contains(uses[1].id) })
            #expect(denied.json.contains("denied") && denied.json.contains("not on student files") && denied.json.contains("\"is_error\":true"))
            #expect(!events.contains { $0.json.contains("must not run") && $0.type == "agent.tool_result" })
            expectWireShapes(events)
        }
    }

    @Test("a turn that reaches its model-request budget stops with budget_reached")
    func budget() async throws {
        try await withBrain(
            script: """
                turns:
                  - tool_use: {name: echo, input: {text: again}}
                  - tool_use: {name: echo, input: {text: again}}
                  - text: "never reached"
                """
        ) { brain in
            let session = SessionID.make()
            try await brain.log.create(session, agent: AgentSnapshot(model: "m", maxModelRequestsPerTurn: 2))
            _ = try await brain.log.append(
                session, [NewEvent(.userMessage(UserMessage(text: "loop")))])
            let outcome = try await brain.runner().run(session: session, fence: try await brain.log.takeFence(session))
            #expect(outcome == TurnOutcome(.idle(.budgetReached), modelRequests: 2))
            let events = try await brain.log.read(session, limit: 1000)
            #expect(events.last?.value.objectValue?["stop_reason"] == .object(["type": .string("budget_reached")]))
            #expect(events.filter { $0.type == "agent.tool_result" }.count == 2)
            expectWireShapes(events)
        }
    }
}
