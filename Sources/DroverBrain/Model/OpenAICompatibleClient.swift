import DroverCore
import DroverHTTP
import DroverTools
import Foundation

public struct OpenAICompatibleConfiguration: Sendable {
    /// For example http://127.0.0.1:8080 (llama.cpp), http://127.0.0.1:11434 (Ollama) or a vLLM
    /// server; `/v1/chat/completions` is appended.
    public var baseURL: String
    public var apiKey: String?
    public var connectTimeout: Duration = .seconds(10)
    public var readTimeout: Duration = .seconds(300)
    public var retry = RetryPolicy()

    public init(baseURL: String, apiKey: String? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
    }
}

/// OpenAI-style chat completions, streamed, with tool calls, so that local model servers can be
/// the brain. Reports the same `ModelStreamEvent`s as the Anthropic client.
public final class OpenAICompatibleClient: ModelClient {
    public let configuration: OpenAICompatibleConfiguration
    private let http: CurlHTTPClient

    public init(configuration: OpenAICompatibleConfiguration, http: CurlHTTPClient = .shared) {
        self.configuration = configuration
        self.http = http
    }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelStreamEvent, Error> {
        RetryingModelStream.make(policy: configuration.retry) { continuation in
            try await self.attempt(request, continuation)
        }
    }

    private struct ToolCallState {
        var id = ""
        var name = ""
        var arguments = ""
    }

    private func attempt(_ request: ModelRequest, _ continuation: AsyncThrowingStream<ModelStreamEvent, Error>.Continuation) async throws {
        var headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if let key = configuration.apiKey { headers.append(("authorization", "Bearer \(key)")) }
        var http = HTTPRequest(
            url: configuration.baseURL + "/v1/chat/completions", headers: headers,
            body: try Self.body(for: request).jsonBytes(),
            connectTimeout: configuration.connectTimeout, readTimeout: configuration.readTimeout
        )
        http.onSent = { continuation.yield(.sent) }
        var parser = SSEParser()
        var status = 0
        var headersIn: [String: String] = [:]
        var errorBody: [UInt8] = []
        var id = "", model = request.model, text = "", finish: String?
        var calls: [Int: ToolCallState] = [:]
        var usage = ModelUsage()
        var started = false
        var done = false
        func handle(_ data: String) throws {
            if data == "[DONE]" {
                done = true
                return
            }
            guard let chunk = (try? JSONValue.parse(data))?.objectValue else { throw ModelError.malformedStream("a chunk is not JSON") }
            if let error = chunk["error"]?.objectValue {
                throw ModelError.api(
                    status: 0, type: error["type"]?.stringValue ?? "api_error", message: error["message"]?.stringValue ?? "", retryAfter: nil)
            }
            if !started {
                started = true
                id = chunk["id"]?.stringValue ?? "chatcmpl"
                model = chunk["model"]?.stringValue ?? model
                continuation.yield(.started(id: id, model: model))
            }
            if let fields = chunk["usage"]?.objectValue {
                usage.inputTokens = fields["prompt_tokens"]?.intValue ?? usage.inputTokens
                usage.outputTokens = fields["completion_tokens"]?.intValue ?? usage.outputTokens
            }
            guard case .array(let choices)? = chunk["choices"], let choice = choices.first?.objectValue else { return }
            if let reason = choice["finish_reason"]?.stringValue { finish = reason }
            let delta = choice["delta"]?.objectValue ?? [:]
            if let piece = delta["content"]?.stringValue, !piece.isEmpty {
                text += piece
                continuation.yield(.textDelta(index: 0, text: piece))
            }
            if case .array(let toolCalls)? = delta["tool_calls"] {
                for call in toolCalls {
                    let fields = call.objectValue ?? [:]
                    let index = fields["index"]?.intValue ?? 0
                    var state = calls[index] ?? ToolCallState()
                    let function = fields["function"]?.objectValue ?? [:]
                    if let callId = fields["id"]?.stringValue { state.id = callId }
                    if let name = function["name"]?.stringValue { state.name += name }
                    if calls[index] == nil { continuation.yield(.toolUseStarted(index: index + 1, id: state.id, name: state.name)) }
                    if let arguments = function["arguments"]?.stringValue {
                        state.arguments += arguments
                        continuation.yield(.inputJSONDelta(index: index + 1, json: arguments))
                    }
                    calls[index] = state
                }
            }
        }
        do {
            for try await part in self.http.stream(http) {
                switch part {
                case .head(let code, let fields):
                    status = code
                    headersIn = fields
                case .body(let bytes) where status != 200:
                    errorBody += bytes
                case .body(let bytes):
                    for event in parser.feed(bytes) { try handle(event.data) }
                }
            }
        } catch let error as HTTPClientError {
            throw ModelError.transport(error.description)
        }
        if status != 200 { throw AnthropicMessagesClient.apiError(status: status, headers: headersIn, body: errorBody) }
        if let event = parser.finish() { try handle(event.data) }
        guard done || finish != nil else { throw ModelError.transport("the stream ended before [DONE]") }
        var content: [ModelContentBlock] = text.isEmpty ? [] : [.text(text)]
        for index in calls.keys.sorted() {
            let call = calls[index]!
            let input =
                call.arguments.isEmpty
                ? JSONValue.object([:]) : ((try? JSONValue.parse(call.arguments)) ?? .object(["_raw": .string(call.arguments)]))
            content.append(.toolUse(id: call.id.isEmpty ? "call_\(index)" : call.id, name: call.name, input: input))
        }
        let stopReason: String
        switch finish {
        case "tool_calls": stopReason = "tool_use"
        case "length": stopReason = "max_tokens"
        default: stopReason = calls.isEmpty ? "end_turn" : "tool_use"
        }
        continuation.yield(.completed(ModelResponse(id: id, model: model, content: content, stopReason: stopReason, usage: usage)))
    }

    static func body(for request: ModelRequest) -> JSONValue {
        var messages: [JSONValue] = []
        if let system = request.system, !system.isEmpty {
            messages.append(.object(["role": .string("system"), "content": .string(system)]))
        }
        for message in request.messages {
            var text = ""
            var toolCalls: [JSONValue] = []
            for block in message.content {
                switch block {
                case .text(let piece):
                    text += piece
                case .toolUse(let id, let name, let input):
                    let arguments = String(decoding: (try? JSONEncoder().encode(input)) ?? Data("{}".utf8), as: UTF8.self)
                    toolCalls.append(
                        .object([
                            "id": .string(id), "type": .string("function"),
                            "function": .object(["name": .string(name), "arguments": .string(arguments)]),
                        ]))
                case .toolResult(let id, let content, let isError):
                    let output = content.compactMap(\.text).joined(separator: "\n")
                    messages.append(
                        .object(["role": .string("tool"), "tool_call_id": .string(id), "content": .string(isError ? "ERROR: " + output : output)]))
                case .thinking:
                    break
                }
            }
            if !text.isEmpty || !toolCalls.isEmpty {
                var fields: [String: JSONValue] = ["role": .string(message.role.rawValue), "content": text.isEmpty ? .null : .string(text)]
                if !toolCalls.isEmpty { fields["tool_calls"] = .array(toolCalls) }
                messages.append(.object(fields))
            }
        }
        var body: [String: JSONValue] = [
            "model": .string(request.model), "messages": .array(messages), "stream": .bool(true),
            "max_tokens": .number(Double(request.maxTokens)),
            "stream_options": .object(["include_usage": .bool(true)]),
        ]
        if !request.tools.isEmpty {
            body["tools"] = .array(
                request.tools.map { tool in
                    .object([
                        "type": .string("function"),
                        "function": .object([
                            "name": .string(tool.name), "description": .string(tool.description), "parameters": tool.inputSchema,
                        ]),
                    ])
                })
        }
        return .object(body)
    }
}
