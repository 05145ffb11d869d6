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
