import DroverCore
import DroverHTTP
import DroverTools
import Foundation

public struct AnthropicConfiguration: Sendable {
    /// `ANTHROPIC_BASE_URL`, default https://api.anthropic.com.
    public var baseURL: String
    /// `ANTHROPIC_API_KEY`.
    public var apiKey: String
    public var version = "2023-06-01"
    public var connectTimeout: Duration = .seconds(10)
    public var readTimeout: Duration = .seconds(120)
    public var retry = RetryPolicy()
    /// Sends the asking session's id in `x-drover-session`: for Drover's scripted model only,
    /// which fills in a job item's fields from it. A real model API is never told.
    public var namesSessions = false

    public init(baseURL: String = "https://api.anthropic.com", apiKey: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
    }

    /// The model from `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`; nil without a key.
    public init?(environment: [String: String]) {
        guard let key = environment["ANTHROPIC_API_KEY"], !key.isEmpty else { return nil }
        if let base = environment["ANTHROPIC_BASE_URL"], !base.isEmpty {
            self.init(baseURL: base, apiKey: key)
        } else {
            self.init(apiKey: key)
        }
    }
}

/// The Anthropic Messages API (`POST /v1/messages`, streamed) over libcurl.
public final class AnthropicMessagesClient: ModelClient {
    public let configuration: AnthropicConfiguration
    private let http: CurlHTTPClient

    public init(configuration: AnthropicConfiguration, http: CurlHTTPClient = .shared) {
        self.configuration = configuration
        self.http = http
    }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelStreamEvent, Error> {
        RetryingModelStream.make(policy: configuration.retry) { continuation in
            try await self.attempt(request, continuation)
        }
    }

    private func attempt(_ request: ModelRequest, _ continuation: AsyncThrowingStream<ModelStreamEvent, Error>.Continuation) async throws {
        let body = try Self.body(for: request).jsonBytes()
        var requestHeaders = [
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("x-api-key", configuration.apiKey),
            ("anthropic-version", configuration.version),
        ]
        if configuration.namesSessions, let session = request.session {
            requestHeaders.append((ScriptedItemFields.sessionHeader, session.rawValue))
        }
        var http = HTTPRequest(
            url: configuration.baseURL + "/v1/messages",
            headers: requestHeaders,
            body: body,
            connectTimeout: configuration.connectTimeout,
            readTimeout: configuration.readTimeout
        )
        http.onSent = { continuation.yield(.sent) }
        var parser = SSEParser()
        var accumulator = MessageStreamAccumulator()
        var status = 0
        var headers: [String: String] = [:]
        var errorBody: [UInt8] = []
        do {
            for try await part in self.http.stream(http) {
                switch part {
                case .head(let code, let fields):
                    status = code
                    headers = fields
                case .body(let bytes) where status != 200:
                    errorBody += bytes
                case .body(let bytes):
                    for event in parser.feed(bytes) {
                        for report in try accumulator.apply(name: event.name, data: event.data) {
                            continuation.yield(report)
                        }
                    }
                }
            }
        } catch let error as HTTPClientError {
            throw ModelError.transport(error.description)
        }
        if status != 200 {
            throw Self.apiError(status: status, headers: headers, body: errorBody)
        }
        if let event = parser.finish(), !accumulator.finished {
            for report in try accumulator.apply(name: event.name, data: event.data) { continuation.yield(report) }
        }
        guard accumulator.finished else {
            throw ModelError.transport("the stream ended before message_stop")
        }
    }

    static func apiError(status: Int, headers: [String: String], body: [UInt8]) -> ModelError {
        let object = (try? JSONValue.parse(String(decoding: body, as: UTF8.self)))?.objectValue
        let error = object?["error"]?.objectValue
        var retryAfter: Duration?
        if let ms = headers["retry-after-ms"].flatMap(Double.init) {
            retryAfter = .milliseconds(ms)
        } else if let seconds = headers["retry-after"].flatMap(Double.init) {
            retryAfter = .seconds(seconds)
        }
        return .api(
            status: status,
            type: error?["type"]?.stringValue ?? "http_\(status)",
            message: error?["message"]?.stringValue ?? String(decoding: body.prefix(500), as: UTF8.self),
            retryAfter: retryAfter
        )
    }

    static func body(for request: ModelRequest) -> JSONValue {
        var body: [String: JSONValue] = [
            "model": .string(request.model),
            "max_tokens": .number(Double(request.maxTokens)),
            "stream": .bool(true),
            "messages": .array(
                request.messages.map { message in
                    .object(["role": .string(message.role.rawValue), "content": .array(message.content.map(encode))])
                }),
        ]
        if let system = request.system, !system.isEmpty { body["system"] = .string(system) }
        if !request.tools.isEmpty {
            body["tools"] = .array(
                request.tools.map { tool in
                    .object(["name": .string(tool.name), "description": .string(tool.description), "input_schema": tool.inputSchema])
                })
        }
        return .object(body)
    }

    static func encode(_ block: ModelContentBlock) -> JSONValue {
        switch block {
        case .text(let text):
            return .object(["type": .string("text"), "text": .string(text)])
        case .thinking(let text, let signature):
            return .object(["type": .string("thinking"), "thinking": .string(text), "signature": .string(signature)])
        case .toolUse(let id, let name, let input):
            return .object(["type": .string("tool_use"), "id": .string(id), "name": .string(name), "input": input])
        case .toolResult(let id, let content, let isError):
            var fields: [String: JSONValue] = [
                "type": .string("tool_result"), "tool_use_id": .string(id), "content": .array(content.map(\.wireValue)),
            ]
            if isError { fields["is_error"] = .bool(true) }
            return .object(fields)
        }
    }
}
