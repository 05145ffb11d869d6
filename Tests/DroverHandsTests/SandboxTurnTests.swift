import DroverBrain
import DroverCore
import DroverDatabase
import DroverHands
import DroverModelStub
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@Suite("A turn with real tools in the sandbox", .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxTurnTests {
    @Test("the model's bash call runs in the session's sandbox and its real output reaches the log")
    func bashTurn() async throws {
        try await withRedisClient(poolSize: 6) { client, _ in
            let path = temporaryDatabasePath()
            let root = URL(fileURLWithPath: path).deletingLastPathComponent()
            defer { Task { await removeHandsRoot(root) } }
            let log = SessionLog(redis: client, database: try MirrorDatabase(path: path))
            let model = try await ScriptedModelServer.start(
                script: try ModelScript.parse(
                    yaml: """
                        turns:
                          - tool_use: {name: bash, input: {command: "echo $((6 * 7)) > answer.txt && cat answer.txt && whoami 2>&1; env | wc -l"}}
                          - text: "The answer is in answer.txt."
                        """))
            let toolset = AgentToolset(root: root.appendingPathComponent("hands"))
            let runner = TurnRunner(
                log: log, model: AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")),
                hand: toolset, deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "m")
            )
            let session = SessionID.make()
            try await log.create(session)
            _ = try await log.append(
                session,
                [NewEvent(.userMessage(UserMessage(text: "compute")))])
            let outcome = try await runner.run(session: session, fence: try await log.takeFence(session))
            await model.stop()
            #expect(outcome.ending == .idle(.endTurn))
            let result = try #require(try await log.read(session, limit: 100).first { $0.type == "agent.tool_result" })
            #expect(result.json.contains("42"), "\(result.json)")
            #expect(result.json.contains("\"is_error\":false"))
            #expect(try String(contentsOf: toolset.workspace(session).appendingPathComponent("answer.txt"), encoding: .utf8) == "42\n")
        }
    }

    @Test("the session's environment (from its meta) reaches the tools: a turn imports the environment's pip package")
    func environmentTurn() async throws {
        try await withRedisClient(poolSize: 6) { client, _ in
            let path = temporaryDatabasePath()
            let root = URL(fileURLWithPath: path).deletingLastPathComponent()
            defer { Task { await removeHandsRoot(root) } }
            try await makeTinyWheel(in: root.appendingPathComponent("wheels"))
            let log = SessionLog(redis: client, database: try MirrorDatabase(path: path))
            let model = try await ScriptedModelServer.start(
                script: try ModelScript.parse(
                    yaml: """
                        turns:
                          - tool_use: {name: bash, input: {command: "python3 -c 'import drovertiny; print(drovertiny.hello())'"}}
                          - text: "Imported."
                        """))
            var settings = SandboxPoolSettings()
            settings.warmPerConfiguration = 0
            settings.pipOptions = ["--no-index", "--find-links", root.appendingPathComponent("wheels").path]
            let toolset = AgentToolset(root: root.appendingPathComponent("hands"), pool: settings)
            let runner = TurnRunner(
                log: log, model: AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")),
                hand: toolset, deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "m")
            )
            let session = SessionID.make()
            let environment =
                #"{"type":"cloud","networking":{"type":"limited","allowed_hosts":[],"allow_mcp_servers":false,"allow_package_managers":false},"packages":{"type":"packages","pip":["drovertiny"],"apt":[],"cargo":[],"gem":[],"go":[],"npm":[]}}"#
            try await log.create(session, environmentJSON: environment)
            #expect(try await log.environmentJSON(session) == environment)
            _ = try await log.append(
                session,
                [NewEvent(.userMessage(UserMessage(text: "import it")))])
            let outcome = try await runner.run(session: session, fence: try await log.takeFence(session))
            await model.stop()
            await toolset.pool.shutdown()
            #expect(outcome.ending == .idle(.endTurn))
            let result = try #require(try await log.read(session, limit: 100).first { $0.type == "agent.tool_result" })
            #expect(result.json.contains("hello from drovertiny"), "\(result.json)")
        }
    }
}
