import DroverBrain
import DroverCore
import DroverModelStub
import DroverTesting
import Foundation
import Testing

/// The project's venv python (scripts/setup installs the SDK there), if it exists.
let venvPython: String? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let python = root.appendingPathComponent(".venv/bin/python").path
    return FileManager.default.isExecutableFile(atPath: python) ? python : nil
}()

@Suite("Scripted model server")
struct ScriptedModelServerTests {
    @Test("the official anthropic SDK streams text and tool use from it", .enabled(if: venvPython != nil, "needs .venv from scripts/setup"))
    func sdkStreams() async throws {
        let server = try await ScriptedModelServer.start(
            script: try ModelScript.parse(
                yaml: """
                    turns:
                      - text: "Seven out of ten."
                        tokens_per_second: 500
                      - tool_use: {name: echo, input: {text: hello}}
                    """))
        defer { Task { await server.stop() } }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("sdk/stream_from_stub.py").path
        let (status, text) = try await runProgram(venvPython!, [script, server.baseURL], timeout: .seconds(60))
        #expect(status == 0, "\(text)")
        #expect(text.contains("sdk stream ok: [scripted] Seven out of ten."))
    }

    @Test("playbook mode calls the named tools, then fills the final message from their real results")
    func playbook() async throws {
        let server = try await ScriptedModelServer.start(
            script: try ModelScript.parse(
                yaml: """
                    playbook:
                      steps:
                        - tool: echo
                          input: {text: "tests for {{user_text}}: 3 passed"}
                        - tool: echo
                          input: {text: "after {{result_1}}"}
                      final: "Report on {{user_text}}. First: {{result_1}}. Last: {{last_result}}."
                    """))
        defer { Task { await server.stop() } }
        let client = AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: server.baseURL, apiKey: "scripted"))
        func ask(_ messages: [ModelMessage]) async throws -> ModelResponse {
            for try await event in client.stream(ModelRequest(model: "m", messages: messages)) {
                if case .completed(let response) = event { return response }
            }
            throw ModelError.malformedStream("no message")
        }
        var messages = [ModelMessage(role: .user, content: [.text("ana.py")])]
        let first = try await ask(messages)
        guard case .toolUse(let id1, "echo", let input1)? = first.content.first else {
            Issue.record("\(first)")
            return
        }
        #expect(input1 == .object(["text": .string("tests for ana.py: 3 passed")]))
        messages += [
            ModelMessage(role: .assistant, content: first.content),
            ModelMessage(role: .user, content: [.toolResult(toolUseId: id1, content: [.text("REAL: 3 passed, 1 failed")], isError: false)]),
        ]
        let second = try await ask(messages)
        guard case .toolUse(let id2, "echo", let input2)? = second.content.first else {
            Issue.record("\(second)")
            return
        }
        #expect(input2 == .object(["text": .string("after REAL: 3 passed, 1 failed")]))
        messages += [
            ModelMessage(role: .assistant, content: second.content),
            ModelMessage(role: .user, content: [.toolResult(toolUseId: id2, content: [.text("second real")], isError: false)]),
        ]
        let final = try await ask(messages)
        #expect(final.content == [.text("[scripted] Report on ana.py. First: REAL: 3 passed, 1 failed. Last: second real.")])
        #expect(final.stopReason == "end_turn")
    }

    @Test("429 carries retry-after, which the client honours; a bad script names the field")
    func faultsAndBadScripts() async throws {
        let server = try await ScriptedModelServer.start(
            script: try ModelScript.parse(
                yaml: """
                    turns:
                      - fault: {status: 429, times: 1, retry_after: 0.2}
                        text: "ok"
                    """))
        defer { Task { await server.stop() } }
        var configuration = AnthropicConfiguration(baseURL: server.baseURL, apiKey: "scripted")
        configuration.retry.baseDelay = .milliseconds(1)
        var retries: [Duration] = []
        var completed = false
        for try await event in AnthropicMessagesClient(configuration: configuration).stream(
            ModelRequest(model: "m", messages: [ModelMessage(role: .user, content: [.text("x")])]))
        {
            if case .retrying(_, let delay, let reason) = event {
                retries.append(delay)
                #expect(reason.contains("429") && reason.contains("rate_limit_error"))
            }
            if case .completed = event { completed = true }
        }
        #expect(completed)
        #expect(retries == [.milliseconds(200)])

        for (yaml, path) in [
            ("turns:\n  - txt: hi", "turns[0].txt"),
            ("turns:\n  - fault: {status: 404}", "turns[0].fault"),
            ("turns:\n  - tool_use: {input: {}}", "turns[0].tool_use[0]"),
            ("turns: nope", "turns"),
            ("{}", "script"),
        ] {
            #expect(throws: ModelScript.ScriptError.self) { try ModelScript.parse(yaml: yaml) }
            do { _ = try ModelScript.parse(yaml: yaml) } catch let error as ModelScript.ScriptError {
                #expect(error.path.contains(path), "\(yaml): \(error)")
            }
        }
    }
}
