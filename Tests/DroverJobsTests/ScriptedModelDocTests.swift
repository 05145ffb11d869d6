import DroverBrain
import DroverCore
import DroverModelStub
import DroverTesting
import DroverTools
import Foundation
import Testing

/// Runs every example of docs/scripted-model.md as the page shows it, so that the page cannot
/// drift from what the scripted model does.
@Suite("docs/scripted-model.md")
struct ScriptedModelDocTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The YAML block after `<!-- example: NAME -->`.
    static func example(_ name: String) throws -> String {
        let page = try String(contentsOf: root.appendingPathComponent("docs/scripted-model.md"), encoding: .utf8)
        let marker = "<!-- example: \(name) -->\n```yaml\n"
        let start = try #require(page.range(of: marker), "docs/scripted-model.md has no example \(name)")
        let end = try #require(page.range(of: "```\n", range: start.upperBound..<page.endIndex))
        return String(page[start.upperBound..<end.lowerBound])
    }

    /// One request to a scripted model serving `yaml`: its events, and how it ended.
    static func ask(
        _ yaml: String, _ messages: [ModelMessage], retry: RetryPolicy? = nil
    ) async throws -> (
        events: [ModelStreamEvent], error: ModelError?
    ) {
        let server = try await ScriptedModelServer.start(script: try ModelScript.parse(yaml: yaml))
        defer { Task { await server.stop() } }
        var configuration = AnthropicConfiguration(baseURL: server.baseURL, apiKey: "scripted")
        if let retry { configuration.retry = retry }
        var events: [ModelStreamEvent] = []
        do {
            for try await event in AnthropicMessagesClient(configuration: configuration).stream(ModelRequest(model: "m", messages: messages)) {
                events.append(event)
            }
        } catch let error as ModelError {
            return (events, error)
        }
        return (events, nil)
    }

    static func response(_ events: [ModelStreamEvent]) -> ModelResponse? {
        for case .completed(let response) in events { return response }
        return nil
    }

    static let firstRequest = [ModelMessage(role: .user, content: [.text("Hello")])]
    static let secondRequest = firstRequest + [ModelMessage(role: .assistant, content: [.text("[scripted] earlier")]), firstRequest[0]]
    static let thirdRequest = secondRequest + [ModelMessage(role: .assistant, content: [.text("[scripted] later")]), firstRequest[0]]

    @Test("turns: the first request gets thinking, text and a tool call; the next the second turn; one past the end a 400")
    func turns() async throws {
        let yaml = try Self.example("turns")
        let first = try #require(Self.response(try await Self.ask(yaml, Self.firstRequest).events))
        guard first.content.count == 3, case .thinking(let thinking, _) = first.content[0], case .text(let text) = first.content[1],
            case .toolUse(_, let name, let input) = first.content[2]
        else {
            Issue.record("\(first.content)")
            return
        }
        #expect(thinking.contains("echo tool") && text == "[scripted] Let me look.")
        #expect(name == "echo" && input == .object(["text": .string("hello")]) && first.stopReason == "tool_use")
        let second = try #require(Self.response(try await Self.ask(yaml, Self.secondRequest).events))
        #expect(second.content == [.text("[scripted] The tool said hello.")] && second.stopReason == "end_turn")
        let past = try await Self.ask(yaml, Self.thirdRequest)
        guard case .api(400, _, let message, _)? = past.error else {
            Issue.record("\(past)")
            return
        }
        #expect(message.contains("the script has 2 turns"))
    }

    @Test("faults: two 529s are retried; a 429 on every request is waited out until the client gives up; a cut stream is retried")
    func faults() async throws {
        let yaml = try Self.example("faults")
        var fast = RetryPolicy()
        fast.baseDelay = .milliseconds(1)
        fast.maxAttempts = 4
        let overloaded = try await Self.ask(yaml, Self.firstRequest, retry: fast)
        let retries = overloaded.events.compactMap { event -> String? in
            if case .retrying(_, _, let reason) = event { return reason }
            return nil
        }
        #expect(retries.count == 2 && retries.allSatisfy { $0.contains("529") }, "\(retries)")
        #expect(Self.response(overloaded.events)?.content == [.text("[scripted] Answered on the third try.")])

        let limited = try await Self.ask(yaml, Self.secondRequest, retry: fast)
        let waits = limited.events.compactMap { event -> Duration? in
            if case .retrying(_, let delay, _) = event { return delay }
            return nil
        }
        #expect(waits == [.milliseconds(100), .milliseconds(100), .milliseconds(100)], "retry-after is what the client waits")
        guard case .retriesExhausted(4, let last)? = limited.error else {
            Issue.record("\(limited)")
            return
        }
        #expect(last.contains("429"))

        let dropped = try await Self.ask(yaml, Self.thirdRequest, retry: fast)
        #expect(Self.response(dropped.events) == nil)
        guard case .retriesExhausted(4, _)? = dropped.error else {
            Issue.record("a cut stream should be retried like a dropped connection: \(dropped)")
            return
        }
    }

    @Test("pacing: the text streams word by word and arrives whole")
    func pacing() async throws {
        let answer = try await Self.ask(try Self.example("pacing"), Self.firstRequest)
        let deltas = answer.events.filter {
            if case .textDelta = $0 { return true }
            return false
        }
        #expect(deltas.count == 12, "one delta per word, the label included")
        #expect(Self.response(answer.events)?.content == [.text("[scripted] This answer arrives word by word, as a real model's would.")])
    }

    @Test("context: a request past context_window is refused as too long; a compaction request gets a summary the playbook carries on from")
    func context() async throws {
        let yaml = try Self.example("context")
        let long = [ModelMessage(role: .user, content: [.text(String(repeating: "word ", count: 2000))])]
        let refused = try await Self.ask(yaml, long)
        guard case .api(400, "invalid_request_error", let message, _)? = refused.error else {
            Issue.record("a request past the window should be refused: \(refused)")
            return
        }
        #expect(message.contains("prompt is too long") && message.contains("> 2000 maximum"), "\(message)")

        let task = ModelMessage(role: .user, content: [.text("Review the abstracts.")])
        let call = ModelMessage(role: .assistant, content: [.toolUse(id: "toolu_1", name: "echo", input: .object(["text": .string("abstract 1")]))])
        let result = ModelMessage(
            role: .user,
            content: [.toolResult(toolUseId: "toolu_1", content: [.text("abstract 1")], isError: false), .text(ContextCompaction.prompt)])
        let summarised = try await Self.ask(yaml, [task, call, result])
        let summary = try #require(Self.response(summarised.events)?.content.first.flatMap { if case .text(let text) = $0 { text } else { nil } })
        #expect(
            summary.contains(#"Task: "Review the abstracts.""#) && summary.contains("Model turns: 1") && summary.contains("Tool results: 1"),
            "\(summary)")
        #expect(Self.response(summarised.events)?.content.count == 1, "a summary calls no tool")

        let carried = [ModelMessage(role: .user, content: [.text(ContextCompaction.continuation(summary: summary))])]
        let next = try #require(Self.response(try await Self.ask(yaml, carried).events))
        #expect(
            next.content == [
                .toolUse(
                    id: next.content.first.flatMap { if case .toolUse(let id, _, _) = $0 { id } else { nil } } ?? "", name: "echo",
                    input: .object(["text": .string("abstract 2")]))
            ])
    }

    @Test("agents: the system prompt picks an agent's own script; a prompt with no marker gets the top-level one")
    func agents() async throws {
        let yaml = try Self.example("agents")
        func ask(system: String?) async throws -> ModelResponse? {
            let server = try await ScriptedModelServer.start(script: try ModelScript.parse(yaml: yaml))
            defer { Task { await server.stop() } }
            var events: [ModelStreamEvent] = []
            let request = ModelRequest(model: "m", system: system, messages: [ModelMessage(role: .user, content: [.text("Find papers")])])
            for try await event in AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: server.baseURL, apiKey: "scripted"))
                .stream(request)
            {
                events.append(event)
            }
            return Self.response(events)
        }
        let coordinator = try #require(try await ask(system: "You coordinate a review."))
        #expect(coordinator.content.contains { if case .toolUse(_, "create_thread", _) = $0 { true } else { false } })
        let searcher = try #require(try await ask(system: "You search abstracts."))
        #expect(searcher.content == [.text("[scripted] Searched: Find papers")])
        let other = try #require(try await ask(system: "You grade."))
        #expect(other.content == [.text("[scripted] No agent of mine.")])
    }

    @Test("coordinator: a create_thread step, a wait step's text, then the final message filled in from the thread's reply")
    func coordinator() async throws {
        let yaml = try Self.example("coordinator")
        let task = ModelMessage(role: .user, content: [.text("Find papers on sparse attention")])
        let first = try #require(Self.response(try await Self.ask(yaml, [task]).events))
        #expect(first.content.contains { if case .toolUse(_, "create_thread", _) = $0 { true } else { false } })
        let call = ModelMessage(role: .assistant, content: [.toolUse(id: "u1", name: "create_thread", input: .object([:]))])
        let started = ModelMessage(role: .user, content: [.toolResult(toolUseId: "u1", content: [.text("Started thread sthr_a_1")], isError: false)])
        let second = try #require(Self.response(try await Self.ask(yaml, [task, call, started]).events))
        #expect(second.content == [.text("[scripted] The searcher is reading.")])
        let reply = ModelMessage(role: .user, content: [.text("Reply from thread sthr_a_1 (searcher):\nL01 and L02")])
        let waited = ModelMessage(role: .assistant, content: [.text("[scripted] The searcher is reading.")])
        let third = try #require(Self.response(try await Self.ask(yaml, [task, call, started, waited, reply]).events))
        #expect(third.content == [.text("[scripted] The searcher says: L01 and L02")])
    }

    @Test("job: drover run with no key fills the item's fields into the step and the final message, with real results")
    func job() async throws {
        let directory = scratchDirectory("doc")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("word-count.yaml")
        try Self.example("job").write(to: job, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        for key in ["DROVER_REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DROVER_DB"] { environment.removeValue(forKey: key) }
        environment["DROVER_DATA_DIR"] = directory.appendingPathComponent("data").path
        let reports = directory.appendingPathComponent("report")
        let run = try await runProgramSeparately(
            droverBinary.path, ["run", job.path, "--report-dir", reports.path], environment: environment, timeout: .seconds(300))
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let report = try JSONValue.parse(String(contentsOf: reports.appendingPathComponent("report.json"), encoding: .utf8))
        let rows = (report.objectValue?["items"]?.arrayValue ?? []).compactMap(\.objectValue)
        let words = Dictionary(
            uniqueKeysWithValues: rows.compactMap { row -> (String, JSONValue)? in
                guard let columns = row["columns"]?.objectValue, let student = columns["student"]?.stringValue else { return nil }
                return (student, columns["words"] ?? .null)
            })
        #expect(words == ["ana": .number(6), "ben": .number(3)], "\(report)")
    }

    @Test("serve: the --model-script example loads with no item fields, and skips the read for a message that names no file")
    func serve() async throws {
        let yaml = try Self.example("serve")
        let script = try ModelScript.parse(yaml: yaml)
        try script.checkPlaceholders(fields: [], file: "serve example", text: yaml)
        let first = try #require(Self.response(try await Self.ask(yaml, [ModelMessage(role: .user, content: [.text("Any TODOs?")])]).events))
        guard case .toolUse(let id, "grep", let input)? = first.content.first else {
            Issue.record("\(first.content)")
            return
        }
        #expect(input == .object(["pattern": .string("TODO"), "path": .string("/workspace")]))
        let answered = [
            ModelMessage(role: .user, content: [.text("Any TODOs?")]), ModelMessage(role: .assistant, content: first.content),
            ModelMessage(role: .user, content: [.toolResult(toolUseId: id, content: [.text("/workspace/a.py:3:# TODO: tests")], isError: false)]),
        ]
        let final = try #require(Self.response(try await Self.ask(yaml, answered).events))
        #expect(
            final.content == [
                .text("[scripted] Open TODOs:\n/workspace/a.py:3:# TODO: tests\n\ngrep: TODO\n/workspace/a.py:3:# TODO: tests")
            ])
    }

    @Test("built-in: the page shows the script drover serve uses, as it is, and so does drover model-stub --print-built-in")
    func builtIn() async throws {
        #expect(try Self.example("built-in") == ModelScript.builtInYAML)
        let printed = try await runProgramSeparately(droverBinary.path, ["model-stub", "--print-built-in"], timeout: .seconds(60))
        #expect(printed.status == 0 && printed.stdout == ModelScript.builtInYAML, "\(printed)")
        #expect(ModelScript.builtIn.playbook?.steps.map(\.tool) == ["bash", "read"])
    }
}
