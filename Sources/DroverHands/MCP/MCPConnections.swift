import Crypto
import DroverCore
import DroverEgress
import DroverTools
import Foundation
import MCP

/// Where a worker's MCP connections may go, and which token they carry.
public struct MCPAccess: Sendable {
    /// Decides each URL server's address before the worker connects (public, or one of the
    /// gate's `internalHosts`), and the connection is pinned to the address it checked. Nil
    /// leaves URL servers unchecked (tests, benchmarks).
    public var gate: EgressGate?
    /// The session's bearer token for a server URL, from its vaults' `static_bearer` credentials.
    public var bearer: (@Sendable (SessionID, String) async throws -> String?)?

    public init(gate: EgressGate? = nil, bearer: (@Sendable (SessionID, String) async throws -> String?)? = nil) {
        self.gate = gate
        self.bearer = bearer
    }
}

/// A worker's MCP servers, through the swift-sdk's `Client`: one connection per server and
/// bearer token, shared by every session and turn of the worker that reaches the server the same
/// way (a session with a token of its own never shares another's connection). A connection that fails is dropped, and the next
/// listing or call connects afresh. A call is never repeated on another connection (I2, docs/ARCHITECTURE.md): one
/// that fails comes back as an `is_error` result and the model decides.
public actor MCPConnections: MCPHand {
    private struct Connection: Sendable {
        let client: Client
        let transport: any Transport
    }

    /// A server, and the digest of the token a connection to it carries (never the token).
    private struct Key: Hashable {
        let server: MCPServerDefinition
        let token: String?
    }

    private var connections: [Key: Task<Connection, Error>] = [:]
    private let connectTimeout: Duration
    private let allowStdio: Bool
    private let access: MCPAccess

    /// `allowStdio` lets agents start stdio servers: commands that run on the worker's host,
    /// outside the sandbox. Off unless the operator turns it on (`drover worker --mcp-stdio`).
    public init(connectTimeout: Duration = .seconds(10), allowStdio: Bool = false, access: MCPAccess = MCPAccess()) {
        self.connectTimeout = connectTimeout
        self.allowStdio = allowStdio
        self.access = access
        // Writing to a stdio server that just died raises SIGPIPE, which would kill the worker.
        signal(SIGPIPE, SIG_IGN)
    }

    /// A stdio server's handshake includes starting its process (a Python server imports its
    /// framework first): it gets at least 30 s.
    private func handshakeTimeout(_ server: MCPServerDefinition) -> Duration {
        server.type == .stdio ? max(connectTimeout, .seconds(30)) : connectTimeout
    }

    public func listTools(_ server: MCPServerDefinition, session: SessionID) async throws -> [MCPTool] {
        let deadline = ContinuousClock.now + handshakeTimeout(server)
        let (key, token) = try await self.key(server, session)
        do {
            return try await listTools(server, on: try await connection(key, token: token, deadline: deadline), deadline: deadline)
        } catch let error as MCPConnectError {
            throw error
        } catch {
            // A kept connection can be stale (the server restarted): one fresh try.
            await drop(key)
            do {
                return try await listTools(server, on: try await connection(key, token: token, deadline: deadline), deadline: deadline)
            } catch {
                await drop(key)
                throw error
            }
        }
    }

    public func callTool(
        _ server: MCPServerDefinition, name: String, arguments: JSONValue, deadline: ContinuousClock.Instant, session: SessionID
    ) async -> ToolResult {
        let connection: Connection
        let key: Key
        do {
            let token: String?
            (key, token) = try await self.key(server, session)
            connection = try await self.connection(key, token: token, deadline: min(deadline, .now + handshakeTimeout(server)))
        } catch {
            return .text("MCP server \(server.name) is unreachable: \(error)", isError: true)
        }
        do {
            let request = CallTool.request(.init(name: name, arguments: try Self.arguments(arguments)))
            let context = try await connection.client.send(request)
            guard let result = try await Self.await(context, on: connection.client, until: deadline) else {
                return .text("MCP tool \(name) on \(server.name) timed out and was cancelled", isError: true)
            }
            return ToolResult(content: result.content.map(Self.block), isError: result.isError ?? false)
        } catch is CancellationError where Task.isCancelled {
            return .text("MCP tool \(name) on \(server.name) was cancelled", isError: true)
        } catch let error as MCPError {
            if case .methodNotFound = error {} else { await drop(key) }
            return .text("MCP tool \(name) on \(server.name) failed: \(error.localizedDescription)", isError: true)
        } catch {
            await drop(key)
            return .text("MCP server \(server.name) failed during \(name): \(error); the call may or may not have taken effect", isError: true)
        }
    }

    /// The process of a connected stdio server, for operators and tests.
    public func processID(of server: MCPServerDefinition) async -> pid_t? {
        guard let task = connections[Key(server: server, token: nil)], let connection = try? await task.value else { return nil }
        return (connection.transport as? StdioServerTransport)?.pid
    }

    /// Closes every connection, for a worker that stops.
    public func shutdown() async {
        let all = connections
        connections = [:]
        for task in all.values {
            if let connection = try? await task.value { await connection.client.disconnect() }
        }
    }

    // MARK: Connections

    /// The session's token for a URL server (looked up at each listing and call, so an archived
    /// or rotated credential counts at once), and the connection key it leads to.
    private func key(_ server: MCPServerDefinition, _ session: SessionID) async throws -> (Key, String?) {
        guard server.type == .url, let url = server.url, let bearer = access.bearer else { return (Key(server: server, token: nil), nil) }
        let token: String?
        do {
            token = try await bearer(session, url)
        } catch {
            throw MCPConnectError("the session's vault credential for \(server.name) could not be read: \(error)")
        }
        let digest = token.map { SHA256.hash(data: Data($0.utf8)).lowercaseHex }
        return (Key(server: server, token: digest), token)
    }

    private func connection(_ key: Key, token: String?, deadline: ContinuousClock.Instant) async throws -> Connection {
        if let existing = connections[key] {
            return try await existing.value
        }
        let server = key.server
        if server.type == .stdio && !allowStdio {
            throw MCPConnectError(
                "\(server.name) is a stdio server, which runs a command on the worker's host outside the sandbox; this worker does not allow them (start it with --mcp-stdio to allow)"
            )
        }
        let access = access
        let task = Task { try await Self.connect(server, token: token, access: access, deadline: deadline) }
        connections[key] = task
        do {
            return try await task.value
        } catch {
            if connections[key] == task { connections[key] = nil }
            throw error
        }
    }

    private func drop(_ key: Key) async {
        guard let task = connections.removeValue(forKey: key) else { return }
        if let connection = try? await task.value { await connection.client.disconnect() }
    }

    /// The address a URL server is reached at, decided as the egress proxy decides a sandbox's
    /// connection: public addresses only, unless the operator names the host, and never Drover's
    /// own endpoints. The `host:port:address` pin keeps a later lookup from choosing another.
    static func pin(_ server: MCPServerDefinition, access: MCPAccess) async throws -> [String] {
        guard let gate = access.gate else { return [] }
        guard let (host, port) = server.endpoint else {
            throw MCPConnectError("\(server.name): the url must be http:// or https:// with a host, not '\(server.url ?? "")'")
        }
        switch await gate.decideForAgent(host: host, port: port) {
        case .success(let address):
            return EgressGate.pin(host: host, port: port, to: address)
        case .failure(let refusal):
            throw MCPConnectError(
                "the worker does not connect to \(server.name) at \(host):\(port) (\(refusal.verdict)): \(refusal.reasonForMCP). An operator can open a host on a private network with DROVER_INTERNAL_HOSTS"
            )
        }
    }

    private static func connect(
        _ server: MCPServerDefinition, token: String?, access: MCPAccess, deadline: ContinuousClock.Instant
    ) async throws -> Connection {
        let client = Client(name: "drover", version: "0.1")
        let transport: any Transport
        switch server.type {
        case .url:
            transport = StreamableHTTPTransport(endpoint: server.url ?? "", bearer: token, resolve: try await pin(server, access: access))
        case .stdio:
            let stdio = try StdioServerTransport(command: server.command ?? [], environment: server.env ?? [:])
            // A server that exits fails its waiting calls now, not at their deadline.
            await stdio.whenClosed { await client.disconnect() }
            transport = stdio
        }
        do {
            let initialize = try await withTaskCancellationHandler {
                try await withDeadline(deadline, onTimeout: { await client.disconnect() }) { try await client.connect(transport: transport) }
            } onCancel: {
                Task { await client.disconnect() }
            }
            guard let initialize else { throw MCPConnectError("\(server.name) did not finish the MCP handshake in time") }
            if let http = transport as? StreamableHTTPTransport { await http.setProtocolVersion(initialize.protocolVersion) }
            return Connection(client: client, transport: transport)
        } catch let error as MCPConnectError {
            await client.disconnect()
            throw error
        } catch {
            await client.disconnect()
            throw MCPConnectError("cannot connect to \(server.name) (\(server.url ?? server.command?.joined(separator: " ") ?? "")): \(error)")
        }
    }

    private func listTools(_ server: MCPServerDefinition, on connection: Connection, deadline: ContinuousClock.Instant) async throws -> [MCPTool] {
        var tools: [MCPTool] = []
        var cursor: String?
        repeat {
            let request = cursor.map { ListTools.request(.init(cursor: $0)) } ?? ListTools.request(.init())
            let context = try await connection.client.send(request)
            guard let page = try await Self.await(context, on: connection.client, until: deadline) else {
                throw MCPConnectError("\(server.name) did not list its tools in time")
            }
            tools += try page.tools.map { MCPTool(name: $0.name, description: $0.description ?? "", inputSchema: try Self.json($0.inputSchema)) }
            cursor = page.nextCursor
        } while cursor != nil
        return tools
    }

    // MARK: Deadlines

    /// The request's result, or nil at the deadline. The SDK's request task does not follow the
    /// caller's cancellation, so a deadline or a cancellation cancels the request itself, which
    /// resumes it at once.
    private static func `await`<Result: Sendable>(
        _ context: RequestContext<Result>, on client: Client, until deadline: ContinuousClock.Instant
    ) async throws -> Result? {
        try await withTaskCancellationHandler {
            try await withDeadline(deadline, onTimeout: { Task { try? await client.cancelRequest(context.requestID, reason: "deadline passed") } }) {
                try await context.value
            }
        } onCancel: {
            Task { try? await client.cancelRequest(context.requestID, reason: "cancelled") }
        }
    }

    // MARK: Conversions

    static func arguments(_ input: JSONValue) throws -> [String: Value]? {
        guard case .object = input else { return nil }
        return try JSONDecoder().decode([String: Value].self, from: JSONEncoder().encode(input))
    }

    static func json(_ value: Value) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    static func block(_ content: Tool.Content) -> ContentBlock {
        switch content {
        case .text(let text, _, _):
            return .text(text)
        case .image(_, let mimeType, _, _):
            return .text("[image \(mimeType) from the MCP tool; Drover passes on text only]")
        case .audio(_, let mimeType, _, _):
            return .text("[audio \(mimeType) from the MCP tool; Drover passes on text only]")
        case .resource(let resource, _, _):
            return .text(resource.text ?? "[resource \(resource.uri)]")
        default:
            return .text("[\(content) from the MCP tool]")
        }
    }
}

struct MCPConnectError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `body`'s result, or nil once `deadline` passes first. `onTimeout` runs then, and must make
/// `body` end (the SDK's requests do not follow task cancellation).
func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant, onTimeout: @Sendable () async -> Void = {},
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(until: deadline, clock: .continuous)
            return nil
        }
        let first = try await group.next()!
        if first == nil { await onTimeout() }
        group.cancelAll()
        return first
    }
}
