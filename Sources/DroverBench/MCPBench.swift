import ArgumentParser
import DroverBrain
import DroverCore
import DroverHands
import DroverRuntime
import DroverTools
import Foundation

struct MCPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "MCP connection, listing and tool-call latency against a running server.",
        discussion: """
            Against the server at --url (streamable HTTP) or started by --command (stdio), one after
            the other: --connects fresh connections, each timed from nothing to its tool list (cold:
            handshake and tools/list); then, on one kept connection, --calls tools/list and --calls
            calls of --tool with --input. The tool's own run time is part of the call time.
            For example, with the test server: `.venv/bin/python Tests/mcp/server.py http 8931 &` then
            `drover bench mcp --url http://127.0.0.1:8931/mcp --tool add --input '{"a":1,"b":2}'`.
            """
    )

    @Option(help: "A streamable HTTP server's endpoint.") var url: String?
    @Option(help: "A stdio server's command line, split on spaces.") var command: String?
    @Option(help: "The tool to call.") var tool: String
    @Option(help: "The tool's input, as a JSON object.") var input = "{}"
    @Option(help: "Calls (and warm listings) to time.") var calls = 200
    @Option(help: "Fresh connections to time.") var connects = 20

    func run() async throws {
        let server: MCPServerDefinition
        switch (url, command) {
        case (let url?, nil): server = .url("bench", url)
        case (nil, let command?): server = .stdio("bench", command: command.split(separator: " ").map(String.init))
        default: throw ValidationError("give exactly one of --url (streamable HTTP) and --command (stdio)")
        }
        guard let arguments = try? JSONDecoder().decode(JSONValue.self, from: Data(input.utf8)), arguments.objectValue != nil else {
            throw ValidationError("--input must be a JSON object, e.g. '{\"a\": 1}'")
        }
        let clock = ContinuousClock()
        func time(_ count: Int, _ body: () async throws -> Void) async rethrows -> [Double] {
            var samples: [Double] = []
            for _ in 0..<count {
                let start = clock.now
                try await body()
                samples.append((clock.now - start).seconds * 1000)
            }
            return samples.sorted()
        }
        let session = SessionID.make()
        let cold = try await time(connects) {
            let fresh = MCPConnections(allowStdio: true)
            _ = try await fresh.listTools(server, session: session)
            await fresh.shutdown()
        }
        let mcp = MCPConnections(allowStdio: true)
        let tools = try await mcp.listTools(server, session: session)
        guard tools.contains(where: { $0.name == tool }) else {
            throw ValidationError("--tool \(tool): the server lists \(tools.map(\.name).joined(separator: ", "))")
        }
        let list = try await time(calls) { _ = try await mcp.listTools(server, session: session) }
        var errors = 0
        let call = await time(calls) {
            if await mcp.callTool(server, name: tool, arguments: arguments, deadline: .now + .seconds(60), session: session).isError { errors += 1 }
        }
        await mcp.shutdown()
        print(
            try encodeJSON(
                JSONValue.object([
                    "benchmark": .string("mcp"), "transport": .string(server.type.rawValue), "calls": .number(Double(calls)),
                    "connect_and_list_ms": latencySummary(cold),
                    "warm_list_tools_ms": latencySummary(list),
                    "warm_call_ms": latencySummary(call),
                    "call_errors": .number(Double(errors)),
                ])))
    }
}
