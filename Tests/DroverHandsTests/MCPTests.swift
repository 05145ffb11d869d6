import DroverBrain
import DroverCore
import DroverDatabase
import DroverEgress
import DroverHands
import DroverModelStub
import DroverSessionLog
import DroverTesting
import DroverTools
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let python = packageRoot.appendingPathComponent(".venv/bin/python").path
private let serverScript = packageRoot.appendingPathComponent("Tests/mcp/server.py").path
/// scripts/setup installs `mcp` from Tests/requirements.txt into the venv, whatever its Python version.
private let hasMCP =
    FileManager.default.isExecutableFile(atPath: python)
    && ((try? FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent(".venv/lib").path)) ?? []).contains {
        FileManager.default.fileExists(atPath: packageRoot.appendingPathComponent(".venv/lib/\($0)/site-packages/mcp/server/fastmcp").path)
    }

/// A port on loopback that nothing listens on right now.
private func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The real FastMCP server of Tests/mcp/server.py, over streamable HTTP on loopback.
private final class MCPTestServer: Sendable {
    let process: ChildProcess
    let port: Int
    let logPath: String
    var url: String { "http://127.0.0.1:\(port)/mcp" }

    private init(process: ChildProcess, port: Int, logPath: String) {
        self.process = process
        self.port = port
        self.logPath = logPath
    }

    /// Starts the server on `port`, or on a free port. A free port is only free when it is
    /// picked: another process (a parallel test) may bind it before the server does, so a server
    /// that finds its address in use is started again, on a new port unless one was asked for.
    static func start(port: Int? = nil, bearer: String? = nil) async throws -> MCPTestServer {
        var attempt = 0
        while true {
            attempt += 1
            let chosen = port ?? freeLoopbackPort()
            let logPath = NSTemporaryDirectory() + "drover-mcp-\(Identifier.make(prefix: "s").suffix(10)).log"
            var environment = ProcessInfo.processInfo.environment
            environment["MCP_BEARER"] = bearer
            let process = try ChildProcess(
                executable: python, arguments: [serverScript, "http", "\(chosen)"], environment: environment, outputPath: logPath)
            let server = MCPTestServer(process: process, port: chosen, logPath: logPath)
            do {
                try await server.waitForLog("Uvicorn running")
                return server
            } catch {
                let taken = server.log.contains("address already in use")
                await server.stop()
                guard taken, attempt < 10 else { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func waitForLog(_ text: String, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !log.contains(text) {
            guard process.isRunning else { throw MCPTestError("the MCP server exited: \(log)") }
            guard ContinuousClock.now < deadline else { throw MCPTestError("no \"\(text)\" from the MCP server: \(log)") }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    func stop() async {
        await process.kill()
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// Runs `body` with a fresh server, and stops the server before returning, whatever happens.
private func withMCPServer(port: Int? = nil, bearer: String? = nil, _ body: (MCPTestServer) async throws -> Void) async throws {
    let server = try await MCPTestServer.start(port: port, bearer: bearer)
    do {
        try await body(server)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}

private struct MCPTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

private func agentJSON(servers: String, toolsets: String = "") -> String {
    #"{"model":"m","tool_timeout_seconds":60,"mcp_servers":[\#(servers)]"# + (toolsets.isEmpty ? "" : #","tools":[\#(toolsets)]"#) + "}"
}

private let allowAll =
    #"{"type":"mcp_toolset","mcp_server_name":"calc","default_config":{"enabled":true,"permission_policy":{"type":"always_allow"}}}"#

/// Runs `body` with a session log, a scripted model and a turn runner whose hands include MCP.
/// A loaded machine can take longer than the production 10 s to get a FastMCP server's first
/// tool list; the tests are not about that limit.
private let testConnectTimeout: Duration = .seconds(60)

/// The session the direct calls below are made for (no vaults: no token).
private let testSession = SessionID.make()

private func withMCPTurn(
    script: String, agent: String, mcp: MCPConnections = MCPConnections(connectTimeout: testConnectTimeout),
    _ body: @Sendable (SessionLog, TurnRunner, SessionID) async throws -> Void
) async throws {
    try await withRedisClient(poolSize: 6) { client, _ in
        let path = temporaryDatabasePath()
        defer { try? FileManager.default.removeItem(at: URL(fileURLWithPath: path).deletingLastPathComponent()) }
        let log = SessionLog(redis: client, database: try MirrorDatabase(path: path))
        let model = try await ScriptedModelServer.start(script: try ModelScript.parse(yaml: script))
        let runner = TurnRunner(
            log: log, model: AnthropicMessagesClient(configuration: AnthropicConfiguration(baseURL: model.baseURL, apiKey: "scripted")),
            hand: InProcessHand(), deltas: DeltaPublisher(redis: nil), defaultAgent: AgentSnapshot(model: "m"), mcp: mcp
        )
        let session = SessionID.make()
        try await log.create(session, agentJSON: agent)
        _ = try await log.append(
            session, [NewEvent(.userMessage(UserMessage(text: "go")))])
        do {
            try await body(log, runner, session)
        } catch {
            await model.stop()
            throw error
        }
        await model.stop()
    }
}

private func expectWireShapes(_ events: [StoredEvent], sourceLocation: SourceLocation = #_sourceLocation) {
    for event in events {
        do {
            _ = try JSONDecoder().decode(SessionEvent.self, from: Data(event.json.utf8))
        } catch {
            Issue.record("event \(event.seq) \(event.type) does not match the wire format: \(error)\n\(event.json)", sourceLocation: sourceLocation)
        }
    }
}

@Suite("MCP agent config")
struct MCPAgentConfigTests {
    @Test("mcp_servers and mcp_toolset entries decode from the SDK's agent shape, stdio as an extension")
    func decodes() throws {
        let agent = try JSONDecoder().decode(
            AgentSnapshot.self,
            from: Data(
                #"""
                {"model":"m","mcp_servers":[{"type":"url","name":"docs","url":"http://127.0.0.1:9/mcp"},
                                            {"type":"stdio","name":"local","command":["python3","s.py"],"env":{"K":"v"}}],
                 "tools":[{"type":"agent_toolset_20260401"},
                          {"type":"mcp_toolset","mcp_server_name":"docs","default_config":{"enabled":true,"permission_policy":{"type":"always_allow"}},
                           "configs":[{"name":"delete","enabled":false,"permission_policy":{"type":"always_ask"}}]}]}
                """#.utf8))
        #expect(agent.mcpServers == [.url("docs", "http://127.0.0.1:9/mcp"), .stdio("local", command: ["python3", "s.py"], env: ["K": "v"])])
        #expect(!agent.mcpPolicy(server: "docs").asks("search") && agent.mcpPolicy(server: "docs").isEnabled("search"))
        #expect(!agent.mcpPolicy(server: "docs").isEnabled("delete"))
        // No mcp_toolset for a server: the Managed Agents default, always_ask.
        #expect(agent.mcpPolicy(server: "local").asks("anything"))
        // The snapshot's own JSON keeps it all.
        #expect(try JSONDecoder().decode(AgentSnapshot.self, from: Data(agent.json.utf8)) == agent)
        #expect(MCPToolName.parse("mcp__docs__search", servers: agent.mcpServers)?.tool == "search")
        #expect(MCPToolName.parse("bash", servers: agent.mcpServers) == nil)
    }

    @Test("a bad mcp_servers entry names the field and the fix")
    func badInput() {
        for (json, expected) in [
            (#"{"model":"m","mcp_servers":[{"type":"sse","name":"a","url":"x"}]}"#, "use \"url\""),
            (#"{"model":"m","mcp_servers":[{"type":"url","name":"a"}]}"#, "mcp_servers[\"a\"].url is missing"),
            (#"{"model":"m","mcp_servers":[{"type":"stdio","name":"a"}]}"#, "mcp_servers[\"a\"].command is missing"),
            (#"{"model":"m","mcp_servers":[{"type":"url","name":"a","url":"x"},{"type":"url","name":"a","url":"y"}]}"#, "used twice"),
        ] {
            #expect {
                try JSONDecoder().decode(AgentSnapshot.self, from: Data(json.utf8))
            } throws: { "\($0)".contains(expected) }
        }
    }
}

@Suite("MCP servers as hands, against a real FastMCP server", .enabled(if: hasMCP, "needs .venv with mcp (scripts/setup)"))
struct MCPTests {
    /// A call's deadline where the test is not about deadlines: a first call includes the MCP
    /// handshake with a Python server, which a loaded machine has taken over 20 s to answer.
    static let generous: Duration = .seconds(120)

    @Test("the model is offered the server's tools and a call runs through a real turn, as agent.mcp_tool_use/result")
    func toolCallThroughTurn() async throws {
        try await withMCPServer { server in
            let mcp = MCPConnections(connectTimeout: testConnectTimeout)
            let tools = try await mcp.listTools(.url("calc", server.url), session: testSession)
            #expect(Set(tools.map(\.name)) == ["add", "slow", "fail", "open_descriptors"])
            #expect(tools.first { $0.name == "add" }?.inputSchema.objectValue?["properties"]?.objectValue?["a"] != nil)

            try await withMCPTurn(
                script: """
                    turns:
                      - tool_use: {name: mcp__calc__add, input: {a: 2, b: 40}}
                      - tool_use: {name: mcp__calc__fail, input: {reason: "no such student"}}
                      - text: "The sum is 42."
                    """, agent: agentJSON(servers: #"{"type":"url","name":"calc","url":"\#(server.url)"}"#, toolsets: allowAll), mcp: mcp
            ) { log, runner, session in
                let outcome = try await runner.run(session: session, fence: try await log.takeFence(session))
                #expect(outcome.ending == .idle(.endTurn))
                let events = try await log.read(session, limit: 200)
                let uses = events.filter { $0.type == "agent.mcp_tool_use" }
                let results = events.filter { $0.type == "agent.mcp_tool_result" }
                try #require(uses.count == 2 && results.count == 2, "\(events.map(\.json))")
                let use = uses[0].value.objectValue ?? [:]
                #expect(use["mcp_server_name"] == .string("calc") && use["name"] == .string("add"))
                #expect(use["input"] == .object(["a": .number(2), "b": .number(40)]))
                #expect(use["evaluated_permission"] == .string("allow"))
                let result = results[0].value.objectValue ?? [:]
                #expect(result["mcp_tool_use_id"] == .string(uses[0].id))
                #expect(result["is_error"] == .bool(false))
                #expect(results[0].json.contains("the sum of 2 and 40 is 42"))
                // A tool that raises is the tool's error, not a broken connection.
                #expect(results[1].value.objectValue?["is_error"] == .bool(true))
                #expect(results[1].json.contains("no such student"))
                #expect(!events.contains { $0.type == "agent.tool_use" || $0.type == "agent.tool_result" || $0.type == "session.error" })
                expectWireShapes(events)
            }
        }
    }

    @Test("a server killed in the middle of a slow call gives an error result and the turn ends cleanly")
    func serverKilledMidCall() async throws {
        try await withMCPServer { server in
            try await withMCPTurn(
                script: """
                    turns:
                      - tool_use: {name: mcp__calc__slow, input: {seconds: 60}}
                      - text: "The server went away."
                    """, agent: agentJSON(servers: #"{"type":"url","name":"calc","url":"\#(server.url)"}"#, toolsets: allowAll)
            ) { log, runner, session in
                let fence = try await log.takeFence(session)
                async let outcome = runner.run(session: session, fence: fence)
                try await server.waitForLog("slow call started")
                await server.process.kill()
                #expect(try await outcome.ending == .idle(.endTurn))
                let events = try await log.read(session, limit: 200)
                let result = try #require(events.first { $0.type == "agent.mcp_tool_result" })
                #expect(result.value.objectValue?["is_error"] == .bool(true))
                // Seen as the server's failure, not waited out until the tool's deadline.
                #expect(result.json.contains("failed") && !result.json.contains("timed out"), "\(result.json)")
                #expect(result.json.contains("MCP server calc failed during slow"), "\(result.json)")
                #expect(events.last?.type == "session.status_idle")
                expectWireShapes(events)
            }
        }
    }

    @Test("a server that is down at the start gives session.error and an error result, never a failed turn")
    func serverDownAtStart() async throws {
        let url = "http://127.0.0.1:\(freeLoopbackPort())/mcp"
        try await withMCPTurn(
            script: """
                turns:
                  - tool_use: {name: mcp__calc__add, input: {a: 1, b: 1}}
                  - text: "The calculator is down."
                """, agent: agentJSON(servers: #"{"type":"url","name":"calc","url":"\#(url)"}"#, toolsets: allowAll)
        ) { log, runner, session in
            let outcome = try await runner.run(session: session, fence: try await log.takeFence(session))
            #expect(outcome.ending == .idle(.endTurn))
            let events = try await log.read(session, limit: 200)
            let error = try #require(events.first { $0.type == "session.error" })
            #expect(error.value.objectValue?["error"]?.objectValue?["type"] == .string("mcp_connection_failed_error"))
            #expect(error.value.objectValue?["error"]?.objectValue?["mcp_server_name"] == .string("calc"))
            let result = try #require(events.first { $0.type == "agent.mcp_tool_result" })
            #expect(result.value.objectValue?["is_error"] == .bool(true))
            #expect(result.json.contains("MCP server calc is unreachable"), "\(result.json)")
            expectWireShapes(events)
        }
    }

    @Test("a connection reconnects after its server restarts")
    func reconnects() async throws {
        let first = try await MCPTestServer.start()
        let server = MCPServerDefinition.url("calc", first.url)
        let mcp = MCPConnections(connectTimeout: testConnectTimeout)
        let before = await mcp.callTool(
            server, name: "add", arguments: numbers(["a": 1, "b": 2]), deadline: .now + Self.generous, session: testSession)
        #expect(before == .text("the sum of 1 and 2 is 3"))
        await first.stop()
        let down = await mcp.callTool(
            server, name: "add", arguments: numbers(["a": 1, "b": 2]), deadline: .now + Self.generous, session: testSession)
        #expect(down.isError)
        try await withMCPServer(port: first.port) { _ in
            let tools = try await mcp.listTools(server, session: testSession)
            #expect(tools.count == 4)
            let after = await mcp.callTool(
                server, name: "add", arguments: numbers(["a": 3, "b": 4]), deadline: .now + Self.generous, session: testSession)
            #expect(after == .text("the sum of 3 and 4 is 7"))
        }
    }

    @Test("a call past its deadline is cancelled with an error result, and the connection keeps working")
    func deadline() async throws {
        try await withMCPServer { server in
            let calc = MCPServerDefinition.url("calc", server.url)
            let mcp = MCPConnections(connectTimeout: testConnectTimeout)
            // Connect first, so the 1 s deadline below measures the call, not the handshake.
            _ = try await mcp.listTools(calc, session: testSession)
            // Had the deadline not cut it, the call would end 30 s later with the tool's answer.
            let late = await mcp.callTool(calc, name: "slow", arguments: numbers(["seconds": 30]), deadline: .now + .seconds(1), session: testSession)
            #expect(late.isError && late == .text("MCP tool slow on calc timed out and was cancelled", isError: true))
            let next = await mcp.callTool(
                calc, name: "add", arguments: numbers(["a": 1, "b": 1]), deadline: .now + Self.generous, session: testSession)
            #expect(next == .text("the sum of 1 and 1 is 2"))
        }
    }

    @Test("MCP tools default to always_ask: the call waits for user.tool_confirmation, then runs")
    func alwaysAsk() async throws {
        try await withMCPServer { server in
            try await withMCPTurn(
                script: """
                    turns:
                      - tool_use: {name: mcp__calc__add, input: {a: 20, b: 22}}
                      - text: "Done."
                    """, agent: agentJSON(servers: #"{"type":"url","name":"calc","url":"\#(server.url)"}"#)
            ) { log, runner, session in
                #expect(try await runner.run(session: session, fence: try await log.takeFence(session)).ending.description == "requires_action")
                var events = try await log.read(session, limit: 200)
                let use = try #require(events.first { $0.type == "agent.mcp_tool_use" })
                #expect(use.value.objectValue?["evaluated_permission"] == .string("ask"))
                #expect(!events.contains { $0.type == "agent.mcp_tool_result" })
                _ = try await log.append(
                    session,
                    try NewEvent.parseClientEvents(#"{"events":[{"type":"user.tool_confirmation","tool_use_id":"\#(use.id)","result":"allow"}]}"#))
                #expect(try await runner.run(session: session, fence: try await log.takeFence(session)).ending == .idle(.endTurn))
                events = try await log.read(session, limit: 200)
                let results = events.filter { $0.type == "agent.mcp_tool_result" }
                #expect(results.count == 1)
                #expect(results.first?.json.contains("the sum of 20 and 22 is 42") == true)
                expectWireShapes(events)
            }
        }
    }

    @Test("a dangling agent.mcp_tool_use left by a crash gets exactly one error result and is not run again")
    func crashRepair() async throws {
        try await withMCPServer { server in
            try await withMCPTurn(
                script: """
                    turns:
                      - tool_use: {name: mcp__calc__slow, input: {seconds: 1}}
                      - text: "I will not repeat it."
                    """, agent: agentJSON(servers: #"{"type":"url","name":"calc","url":"\#(server.url)"}"#, toolsets: allowAll)
            ) { log, runner, session in
                let crashed = try await log.takeFence(session)
                _ = try await log.append(
                    session,
                    [
                        NewEvent(.sessionStatusRunning),
                        NewEvent(.agentMCPToolUse(AgentMCPToolUse(mcpServerName: "calc", name: "slow", input: ["seconds": .number(1)]))),
                    ], fence: crashed)
                let outcome = try await runner.run(session: session, fence: try await log.takeFence(session))
                #expect(outcome.ending == .idle(.endTurn))
                #expect(try await runner.run(session: session, fence: try await log.takeFence(session)).ending == .nothingToDo)
                let events = try await log.read(session, limit: 200)
                let results = events.filter { $0.type == "agent.mcp_tool_result" }
                #expect(results.count == 1)
                #expect(results.first?.json.contains(TurnRunner.crashInterruption) == true)
                #expect(!server.log.contains("slow call started"))
                expectWireShapes(events)
            }
        }
    }

    @Test("a session's static_bearer token reaches its server from the worker, and a session without one is refused with the fix")
    func bearerTokens() async throws {
        let token = "bearer-\(Identifier.make(prefix: "t").suffix(16))"
        let holder = SessionID.make()
        let stranger = SessionID.make()
        try await withMCPServer(bearer: token) { server in
            let looked = Locked<[String]>([])
            let access = MCPAccess(bearer: { session, url in
                looked.withLock { $0.append(url) }
                return session == holder ? token : nil
            })
            let mcp = MCPConnections(connectTimeout: testConnectTimeout, access: access)
            let calc = MCPServerDefinition.url("calc", server.url)
            let tools = try await mcp.listTools(calc, session: holder)
            #expect(tools.contains { $0.name == "add" })
            let sum = await mcp.callTool(calc, name: "add", arguments: numbers(["a": 2, "b": 3]), deadline: .now + Self.generous, session: holder)
            #expect(sum == .text("the sum of 2 and 3 is 5"))
            // Another session never rides on the holder's connection.
            await #expect { try await mcp.listTools(calc, session: stranger) } throws: {
                "\($0)".contains("HTTP 401") && "\($0)".contains("static_bearer credential for \(server.url)")
            }
            let refused = await mcp.callTool(
                calc, name: "add", arguments: numbers(["a": 1, "b": 1]), deadline: .now + Self.generous, session: stranger)
            #expect(refused.isError)
            #expect(looked.value.allSatisfy { $0 == server.url } && looked.value.count >= 4)
            await mcp.shutdown()
        }
    }

    @Test("a worker reaches URL servers only at public addresses unless the operator names the host, and never Drover's endpoints")
    func serverGate() async throws {
        try await withMCPServer { server in
            let calc = MCPServerDefinition.url("calc", server.url)
            let closed = MCPConnections(connectTimeout: testConnectTimeout, access: MCPAccess(gate: EgressGate()))
            await #expect { try await closed.listTools(calc, session: testSession) } throws: {
                "\($0)".contains("refused: non-public address") && "\($0)".contains("DROVER_INTERNAL_HOSTS")
            }
            let metadata = MCPServerDefinition.url("meta", "http://169.254.169.254/mcp")
            await #expect { try await closed.listTools(metadata, session: testSession) } throws: { "\($0)".contains("link-local") }
            let opened = MCPConnections(connectTimeout: testConnectTimeout, access: MCPAccess(gate: EgressGate(internalHosts: ["127.0.0.1"])))
            let listed = try await opened.listTools(calc, session: testSession)
            #expect(listed.contains { $0.name == "add" })
            // Drover's own endpoint stays closed, listed or not.
            let guarded = EgressGate(protected: EgressGate.addresses(of: [("127.0.0.1", server.port)]), internalHosts: ["127.0.0.1"])
            let own = MCPConnections(connectTimeout: testConnectTimeout, access: MCPAccess(gate: guarded))
            await #expect { try await own.listTools(calc, session: testSession) } throws: { "\($0)".contains("Drover endpoint") }
            await opened.shutdown()
        }
    }

    @Test("a stdio server started by command is listed and called, and its death fails the call at once")
    func stdioServer() async throws {
        let server = MCPServerDefinition.stdio("local", command: [python, serverScript, "stdio"])
        // Off by default: an agent's command would run on the worker's host.
        await #expect { try await MCPConnections().listTools(server, session: testSession) } throws: { "\($0)".contains("--mcp-stdio") }
        let mcp = MCPConnections(connectTimeout: testConnectTimeout, allowStdio: true)
        do {
            try await stdioCalls(server, mcp)
        } catch {
            await mcp.shutdown()
            throw error
        }
        await mcp.shutdown()
    }

    /// Issue 12: a stdio server is a child of the worker, like a sandbox; it must not inherit the
    /// worker's Redis connections or the API's listener either.
    @Test("a stdio server holds none of the host's sockets, though the host holds them without close-on-exec")
    func stdioDescriptors() async throws {
        let leaked = try LeakySockets()
        defer { leaked.close() }
        let identities = leaked.identities
        #expect(identities.count == 2 && identities.allSatisfy { $0.hasPrefix("socket:[") }, "\(identities)")
        let server = MCPServerDefinition.stdio("local", command: [python, serverScript, "stdio"])
        let mcp = MCPConnections(connectTimeout: testConnectTimeout, allowStdio: true)
        let result = await mcp.callTool(
            server, name: "open_descriptors", arguments: .object([:]), deadline: .now + Self.generous, session: testSession)
        await mcp.shutdown()
        guard !result.isError, let listing = result.content.first?.text else {
            Issue.record("open_descriptors failed: \(result)")
            return
        }
        let targets = listing.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" }
        #expect(targets.count >= 3, "\(listing)")
        for identity in identities {
            #expect(!targets.contains(identity), "the stdio server holds the host's \(identity):\n\(listing)")
        }
    }

    private func stdioCalls(_ server: MCPServerDefinition, _ mcp: MCPConnections) async throws {
        let tools = try await mcp.listTools(server, session: testSession)
        #expect(tools.map(\.name).contains("add"))
        let result = await mcp.callTool(
            server, name: "add", arguments: numbers(["a": 5, "b": 6]), deadline: .now + Self.generous, session: testSession)
        #expect(result == .text("the sum of 5 and 6 is 11"))
        let slow = Task {
            await mcp.callTool(server, name: "slow", arguments: numbers(["seconds": 3600]), deadline: .now + .seconds(3600), session: testSession)
        }
        try await Task.sleep(for: .milliseconds(500))
        let pid = try #require(await mcp.processID(of: server))
        kill(pid, SIGKILL)
        let dead = try await finishing(within: .seconds(60)) { await slow.value }
        // Seen as the server's death, not waited out until the hour's deadline.
        #expect(dead.isError && !"\(dead)".contains("timed out"), "\(dead)")
    }
}

private func numbers(_ values: [String: Double]) -> JSONValue {
    .object(values.mapValues { .number($0) })
}
