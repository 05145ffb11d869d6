import DroverHTTP
import Foundation
import Logging
import MCP

/// The MCP streamable HTTP transport over libcurl, for the swift-sdk's `Client`.
///
/// The SDK's own `HTTPClientTransport` does not read `text/event-stream` responses on Linux (it
/// hands the raw SSE text to the client as if it were JSON), and servers such as the Python SDK's
/// FastMCP answer every request that way. This one POSTs each message, reads the answer as JSON or
/// SSE, and fails the request when the server goes away before answering, so a caller is never
/// left waiting on a dead server.
actor StreamableHTTPTransport: Transport {
    nonisolated let logger: Logger
    let endpoint: String
    /// The session's token for this server, sent as `Authorization: Bearer`; it lives here, in
    /// the worker, and never in a sandbox or the session's events.
    private let bearer: String?
    private let resolve: [String]
    private let http: CurlHTTPClient
    private var sessionID: String?
    private var protocolVersion: String?
    private let messages: AsyncThrowingStream<Data, Error>
    private let continuation: AsyncThrowingStream<Data, Error>.Continuation

    init(
        endpoint: String, bearer: String? = nil, resolve: [String] = [], http: CurlHTTPClient = .shared,
        logger: Logger = Logger(label: "drover.mcp.http")
    ) {
        self.endpoint = endpoint
        self.bearer = bearer
        self.resolve = resolve
        self.http = http
        self.logger = logger
        (messages, continuation) = AsyncThrowingStream.makeStream()
    }

    func connect() async throws {}

    func disconnect() async {
        continuation.finish()
    }

    func setProtocolVersion(_ version: String) {
        protocolVersion = version
    }

    func receive() -> AsyncThrowingStream<Data, Error> {
        messages
    }

    func send(_ data: Data) async throws {
        var headers = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
        if let sessionID { headers.append(("Mcp-Session-Id", sessionID)) }
        if let protocolVersion { headers.append(("MCP-Protocol-Version", protocolVersion)) }
        if let bearer { headers.append(("Authorization", "Bearer \(bearer)")) }
        // A long tool call may keep the response silent for a while; the caller's deadline, not
        // this, bounds a call.
        var request = HTTPRequest(
            url: endpoint, method: "POST", headers: headers, body: Array(data),
            connectTimeout: .seconds(5), readTimeout: .seconds(3600))
        request.resolve = resolve
        let expectsAnswer = Self.isRequest(data)
        var answered = false
        var isEventStream = false
        var body: [UInt8] = []
        var parser = SSEParser()
        for try await part in http.stream(request) {
            switch part {
            case .head(let status, let responseHeaders):
                if let id = responseHeaders["mcp-session-id"] { sessionID = id }
                isEventStream = responseHeaders["content-type"]?.contains("text/event-stream") == true
                if status == 404, sessionID != nil {
                    sessionID = nil
                    throw MCPTransportError("the server no longer knows this MCP session (HTTP 404); reconnect")
                }
                guard (200..<300).contains(status) else {
                    if status == 401 || status == 403 {
                        throw MCPTransportError(
                            "the server answered HTTP \(status): \(bearer == nil ? "it wants a token; put a static_bearer credential for \(endpoint) in one of the session's vaults" : "it refused the session's static_bearer token")"
                        )
                    }
                    throw MCPTransportError("the server answered HTTP \(status)")
                }
            case .body(let bytes):
                if isEventStream {
                    for event in parser.feed(bytes) where !event.data.isEmpty {
                        answered = answered || Self.isResponse(event.data)
                        continuation.yield(Data(event.data.utf8))
                    }
                } else {
                    body += bytes
                }
            }
        }
        if isEventStream, let last = parser.finish(), !last.data.isEmpty {
            answered = answered || Self.isResponse(last.data)
            continuation.yield(Data(last.data.utf8))
        }
        if !body.isEmpty {
            answered = true
            continuation.yield(Data(body))
        }
        if expectsAnswer && !answered {
            throw MCPTransportError("the server closed the response without answering")
        }
    }

    /// A JSON-RPC request (it has an id and a method), which must get a response.
    private static func isRequest(_ data: Data) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["id"] != nil && object["method"] != nil
    }

    private static func isResponse(_ text: String) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return false }
        return object["id"] != nil && (object["result"] != nil || object["error"] != nil)
    }
}

struct MCPTransportError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
