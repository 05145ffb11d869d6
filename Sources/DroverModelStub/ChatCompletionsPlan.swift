import DroverCore
import Foundation
import Hummingbird
import NIOCore

/// The same scripted turn as an OpenAI-style chat completion stream, for testing clients of
/// local model servers (llama.cpp, vLLM, Ollama).
struct ChatCompletionsPlan: Sendable {
    let turn: ModelScript.Turn
    let model: String
    let promptTokens: Int
    let id = "chatcmpl-scripted-" + Identifier.make(prefix: "c").suffix(16).lowercased()

    static func step(_ messages: [JSONValue]) -> Int {
        messages.filter { $0.objectValue?["role"]?.stringValue == "assistant" }.count
    }

    func stream(into writer: inout any ResponseBodyWriter) async throws {
        func send(_ value: JSONValue) async throws {
            try await writer.write(ByteBuffer(string: "data: \(value.compactJSON)\n\n"))
        }
        func chunk(_ delta: JSONValue, finish: String? = nil) -> JSONValue {
            .object([
                "id": .string(id), "object": .string("chat.completion.chunk"), "model": .string(model),
                "choices": .array([.object(["index": .number(0), "delta": delta, "finish_reason": finish.map(JSONValue.string) ?? .null])]),
            ])
        }
        try await send(chunk(.object(["role": .string("assistant"), "content": .string("")])))
        if turn.ttftMilliseconds > 0 { try await Task.sleep(for: .milliseconds(turn.ttftMilliseconds)) }
        var completion = 0
        if let text = turn.text.map({ ScriptedModelServer.label + $0 }) {
            for piece in MessagePlan.tokens(text) {
                try await send(chunk(.object(["content": .string(piece)])))
                completion += 1
            }
        }
        for (index, use) in turn.toolUses.enumerated() {
            try await send(
                chunk(
                    .object([
                        "tool_calls": .array([
                            .object([
                                "index": .number(Double(index)), "id": .string("call_scripted_\(index)"), "type": .string("function"),
                                "function": .object(["name": .string(use.name), "arguments": .string("")]),
                            ])
                        ])
                    ])))
            for piece in MessagePlan.chunks(use.input.compactJSON, size: 12) {
                try await send(
                    chunk(
                        .object([
                            "tool_calls": .array([
                                .object([
                                    "index": .number(Double(index)), "function": .object(["arguments": .string(piece)]),
                                ])
                            ])
                        ])))
                completion += 1
            }
        }
        try await send(chunk(.object([:]), finish: turn.toolUses.isEmpty ? "stop" : "tool_calls"))
        try await send(
            .object([
                "id": .string(id), "object": .string("chat.completion.chunk"), "model": .string(model), "choices": .array([]),
                "usage": .object(["prompt_tokens": .number(Double(promptTokens)), "completion_tokens": .number(Double(max(1, completion)))]),
            ]))
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
        try await writer.finish(nil)
    }
}
