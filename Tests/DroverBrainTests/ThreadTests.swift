import DroverBrain
import DroverCore
import DroverQueue
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

/// A coordinator and its roster, run by real workers from the real queue.
@Suite("Session threads")
struct ThreadTests {
    static let script = """
        agents:
          "You coordinate":
            turns:
              - text: "Delegating."
                tool_uses:
                  - {name: create_thread, input: {agent: searcher, message: "Find papers on sparse attention"}}
                  - {name: create_thread, input: {agent: searcher, message: "Find papers on state space models"}}
                  - {name: create_thread, input: {agent: extractor, message: "Extract the datasets"}}
              - text: "Waiting for the threads."
              - text: "All three replied."
          "You search":
            playbook:
              steps:
                - {tool: echo, input: {text: "found for {{user_text}}"}}
              final: "Search done: {{last_result}}"
              ttft_ms: 500
          "You extract":
            turns:
              - text: "Extracted 3 datasets."
                ttft_ms: 300
        """

    static func roster() throws -> ThreadRoster {
        func member(_ name: String, _ system: String) -> ThreadRoster.Member {
            ThreadRoster.Member(
                name: name, description: nil, snapshot: AgentSnapshot(model: "claude-test", system: system),
                resource: .object(["type": "agent", "name": .string(name)]))
        }
        return ThreadRoster(members: [member("searcher", "You search abstracts."), member("extractor", "You extract data.")], inlineAgents: false)
    }

    static func coordinator() throws -> AgentSnapshot {
        var agent = AgentSnapshot(model: "claude-test", system: "You coordinate a literature review.")
        agent.roster = try roster()
        return agent
    }

    @Test("a coordinator starts three threads, which run on their own logs in parallel, and it finishes once every reply is in")
    func fanOut() async throws {
        try await withBrain(script: Self.script) { brain in
            var options = Worker.Options()
            options.concurrency = 4
            options.workerId = "threads-test"
            let queue = TaskQueue(redis: brain.client)
            let worker = Worker(queue: queue, runner: brain.runner(), options: options)
            let running = Task { try await worker.run() }
            defer { running.cancel() }

            let session = SessionID.make()
            try await brain.log.create(session, agent: try Self.coordinator())
            try await SessionInbox(log: brain.log, queue: queue).send([.userMessage(UserMessage(text: "Review the literature"))], to: session)
            let finished = try await eventually(within: .seconds(90)) { ((try? await brain.types(session)) ?? []).last == "session.status_idle" }
            let seen = try await brain.types(session)
            try #require(finished, "the coordinator never finished: \(seen)")

            let events = try await brain.log.read(session, limit: 10_000)
            expectWireShapes(events)
            let created = events.compactMap { event -> SessionThreadCreated? in
                if case .sessionThreadCreated(let created)? = event.payload { return created }
                return nil
            }
            #expect(created.map(\.agentName) == ["searcher", "searcher", "extractor"])
            let replies = events.compactMap { event -> AgentThreadMessageReceived? in
                if case .agentThreadMessageReceived(let received)? = event.payload { return received }
                return nil
            }
            #expect(Set(replies.map(\.fromSessionThreadId)) == Set(created.map(\.sessionThreadId)))
            let texts = replies.flatMap { $0.content.compactMap(\.text) }
            #expect(texts.contains("[scripted] Search done: found for Find papers on sparse attention"), "\(texts)")
            #expect(texts.contains("[scripted] Search done: found for Find papers on state space models"), "\(texts)")
            #expect(texts.contains("[scripted] Extracted 3 datasets."), "\(texts)")
            // The coordinator's last request came after every reply: it idles once, at the end.
            #expect(events.filter { $0.kind == .sessionStatusIdle }.count == 1)
            let lastReply = try #require(events.last { $0.kind == .agentThreadMessageReceived })
            let lastStart = try #require(events.last { $0.kind == .spanModelRequestStart })
            #expect(lastStart.seq > lastReply.seq)
            #expect(events.filter { $0.kind == .spanModelRequestStart }.count == 3)

            for thread in created {
                let id = try SessionID(thread.sessionThreadId)
                let own = try await brain.log.read(id, limit: 1000)
                expectWireShapes(own)
                #expect(own.first?.kind == .agentThreadMessageReceived)
                #expect(own.last?.kind == .sessionStatusIdle)
                #expect(own.contains { $0.kind == .agentThreadMessageSent })
                let origin = try #require(try await brain.log.agentSnapshot(id)?.thread)
                #expect(origin.session == session && origin.agentName == thread.agentName)
            }
            // Threads of one session ran at once: the searchers' turns overlapped.
            let spans = try await created.asyncMap { thread -> (Date, Date) in
                let own = try await brain.log.read(try SessionID(thread.sessionThreadId), limit: 1000)
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let start = formatter.date(from: own.first { $0.kind == .sessionStatusRunning }!.processedAt)!
                let end = formatter.date(from: own.last!.processedAt)!
                return (start, end)
            }
            #expect(spans.contains { a in spans.contains { b in a != b && a.0 < b.1 && b.0 < a.1 } }, "no two threads overlapped: \(spans)")
            worker.drain()
            try await running.value
        }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

@Suite("Session threads across crashes")
struct ThreadCrashTests {
    func messenger(_ brain: BrainFixture) -> ThreadMessenger {
        ThreadMessenger(inbox: SessionInbox(log: brain.log, queue: TaskQueue(redis: brain.client)), limit: 8)
    }

    @Test("a create_thread call cut off by a crash is run again on resume: one thread, one message, a real result, no interruption")
    func danglingCreateThread() async throws {
        try await withBrain(script: ThreadTests.script) { brain in
            let session = SessionID.make()
            try await brain.log.create(session, agent: try ThreadTests.coordinator())
            try await brain.log.append(session, [.userMessage(UserMessage(text: "Review"))])
            // What a worker killed while running the call left: the call, and no result.
            let dead = try await brain.log.takeFence(session)
            let input: [String: JSONValue] = ["agent": "searcher", "message": "Find papers on sparse attention"]
            let appended = try await brain.log.append(
                session,
                [
                    .sessionStatusRunning, .spanModelRequestStart,
                    .agentToolUse(AgentToolUse(name: ThreadTools.create, input: input, evaluatedPermission: .allow, evaluation: .alwaysAllow)),
                    .spanModelRequestEnd(SpanModelRequestEnd(modelRequestStartId: "x", modelUsage: ModelUsage(), isError: false)),
                ], fence: dead)
            let useId = SessionLog.eventID(session, seq: appended.firstSeq + 2)

            let fence = try await brain.log.takeFence(session)
            let outcome = try await brain.runner().run(session: session, fence: fence, threads: messenger(brain))
            #expect(outcome.ending == .awaitingThreads)
            let events = try await brain.log.read(session, limit: 1000)
            expectWireShapes(events)
            let results = events.filter { $0.kind == .agentToolResult }
            #expect(results.count == 1)
            #expect(results.first?.value.objectValue?["is_error"] == .bool(false))
            #expect(!events.contains { $0.json.contains(TurnRunner.crashInterruption) })
            let thread = try #require(ThreadIDs.child(startedBy: useId))
            #expect(events.filter { $0.kind == .sessionThreadCreated }.count == 1)
            #expect(events.contains { $0.json.contains(thread.rawValue) })
            let own = try await brain.log.read(thread, limit: 100)
            #expect(own.map(\.type) == ["agent.thread_message_received"])
        }
    }

    @Test("a thread's reply lost between its idle and its delivery goes at the next wake, once")
    func replyRedelivered() async throws {
        try await withBrain(script: ThreadTests.script) { brain in
            let session = SessionID.make()
            try await brain.log.create(session, agent: try ThreadTests.coordinator())
            let thread = try SessionID("sthr_\(session.idPart)_000009")
            var agent = AgentSnapshot(model: "claude-test", system: "You search abstracts.")
            agent.thread = ThreadOrigin(session: session, parentThread: ThreadIDs.primary(of: session), agentName: "searcher")
            try await brain.log.create(thread, agent: agent)
            // A turn that ended, with its reply sent in its own log, and the worker gone before
            // the reply reached the coordinator.
            let reply: [ContentBlock] = [.text("Found 4 papers.")]
            try await brain.log.append(
                thread,
                [
                    .agentThreadMessageReceived(
                        AgentThreadMessageReceived(
                            content: [.text("Search")], fromSessionThreadId: ThreadIDs.primary(of: session), fromAgentName: nil)),
                    .sessionStatusRunning, .agentMessage(AgentMessage(content: reply)),
                    .agentThreadMessageSent(
                        AgentThreadMessageSent(content: reply, toSessionThreadId: ThreadIDs.primary(of: session), toAgentName: nil)),
                    .sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)),
                ])
            for _ in 0..<3 {
                let fence = try await brain.log.takeFence(thread)
                let outcome = try await brain.runner().run(session: thread, fence: fence, threads: messenger(brain))
                #expect(outcome.ending == .nothingToDo)
            }
            let events = try await brain.log.read(session, limit: 100)
            expectWireShapes(events)
            let received = events.compactMap { event -> AgentThreadMessageReceived? in
                if case .agentThreadMessageReceived(let message)? = event.payload { return message }
                return nil
            }
            #expect(received.count == 1)
            #expect(
                received.first?.content == reply && received.first?.fromSessionThreadId == thread.rawValue
                    && received.first?.fromAgentName == "searcher")
            #expect(events.filter { $0.kind == .sessionThreadStatusIdle }.count == 1)
        }
    }

    @Test("kill -9 the worker while threads run: each thread resumes from its log, each replies once, and the coordinator finishes")
    func killWhileThreadsRun() async throws {
        let slow = ThreadTests.script.replacingOccurrences(of: "ttft_ms: 500", with: "ttft_ms: 1500")
        try await withBrain(script: slow) { brain in
            let directory = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent()
            func startWorker(_ name: String) throws -> ChildProcess {
                try ChildProcess(
                    executable: droverBinary.path,
                    arguments: ["worker", "--concurrency", "4", "--lease-seconds", "2", "--drain-seconds", "2", "--hands", "in-process"],
                    environment: brain.processEnvironment, outputPath: directory.appendingPathComponent("\(name).log").path)
            }
            let session = SessionID.make()
            try await brain.log.create(session, agent: try ThreadTests.coordinator())
            try await SessionInbox(log: brain.log, queue: TaskQueue(redis: brain.client)).send(
                [.userMessage(UserMessage(text: "Review the literature"))], to: session)

            let first = try startWorker("a")
            let started = try await eventually(within: .seconds(120), polling: .milliseconds(20)) {
                (try await brain.log.read(session, limit: 1000)).filter { $0.kind == .sessionThreadCreated }.count == 3
            }
            #expect(started, "the coordinator never started its threads")
            await first.kill()
            let before = try await brain.log.read(session, limit: 1000)
            let repliedBeforeKill = before.filter { $0.kind == .agentThreadMessageReceived }.count
            #expect(repliedBeforeKill < 3, "every thread replied before the kill; the test proves nothing")

            let second = try startWorker("b")
            let idle = try await eventually(within: .seconds(180), polling: .milliseconds(50)) {
                try await brain.types(session).last == "session.status_idle"
            }
            let seen = try await brain.types(session)
            #expect(idle, "the coordinator did not finish after the kill: \(seen)")
            await second.terminate(grace: .seconds(15))

            let events = try await brain.log.read(session, limit: 1000)
            expectWireShapes(events)
            let created = events.compactMap { event -> String? in
                if case .sessionThreadCreated(let created)? = event.payload { return created.sessionThreadId }
                return nil
            }
            #expect(created.count == 3 && Set(created).count == 3)
            let from = events.compactMap { event -> String? in
                if case .agentThreadMessageReceived(let received)? = event.payload { return received.fromSessionThreadId }
                return nil
            }
            #expect(from.sorted() == created.sorted(), "each thread replies exactly once: \(from)")
            // The coordinator's last answer came after every reply: it waited for them all. (Which
            // scripted line it is depends on where the kill cut its turn.)
            let lastAnswer = try #require(events.last { $0.kind == .agentMessage })
            #expect(events.filter { $0.kind == .agentThreadMessageReceived }.allSatisfy { $0.seq < lastAnswer.seq })
            for thread in created {
                let own = try await brain.log.read(try SessionID(thread), limit: 1000)
                expectWireShapes(own)
                // A call cut off by the kill got one error result; none ran twice unrecorded.
                let uses = own.filter { $0.kind == .agentToolUse }.map(\.id)
                let answered = own.compactMap { $0.payload?.answeredToolUse }
                #expect(Set(uses) == Set(answered) && answered.count == Set(answered).count)
                #expect(own.filter { $0.kind == .agentThreadMessageSent }.count == 1)
            }
        }
    }
}
