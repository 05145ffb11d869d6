import DroverCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// One scripted answer, as SSE events or as one JSON message.
struct MessagePlan: Sendable {
    let turn: ModelScript.Turn
    let model: String
    let inputTokens: Int
    let id = "msg_scripted_" + Identifier.make(prefix: "m").suffix(20).lowercased()

    private var text: String? { turn.text.map { ScriptedModelServer.label + $0 } }

    private var toolIds: [String] {
        turn.toolUses.indices.map { "toolu_scripted_\(id.suffix(12))_\($0)" }
    }

    private var outputTokens: Int {
        max(1, ((text?.utf8.count ?? 0) + (turn.thinking?.utf8.count ?? 0) + turn.toolUses.reduce(0) { $0 + ($1.input).compactJSON.utf8.count }) / 4)
    }

    private var stopReason: String { turn.toolUses.isEmpty ? "end_turn" : "tool_use" }

    private var usage: JSONValue {
        .object([
            "input_tokens": .number(Double(inputTokens)), "output_tokens": .number(Double(outputTokens)),
            "cache_creation_input_tokens": .number(0), "cache_read_input_tokens": .number(0),
        ])
    }

    func json() -> String {
        var content: [JSONValue] = []
        if let thinking = turn.thinking {
            content.append(.object(["type": .string("thinking"), "thinking": .string(thinking), "signature": .string("scripted")]))
        }
        if let text { content.append(.object(["type": .string("text"), "text": .string(text)])) }
        for (index, use) in turn.toolUses.enumerated() {
            content.append(.object(["type": .string("tool_use"), "id": .string(toolIds[index]), "name": .string(use.name), "input": use.input]))
        }
        return
            (JSONValue.object([
                "id": .string(id), "type": .string("message"), "role": .string("assistant"), "model": .string(model),
                "content": .array(content), "stop_reason": .string(stopReason), "stop_sequence": .null, "usage": usage,
            ])).compactJSON
    }

    /// Writes the SSE stream, pacing deltas and dropping the connection where the script says.
    func stream(into writer: inout any ResponseBodyWriter) async throws {
        var written = 0
        func send(_ name: String, _ data: JSONValue) async throws {
            var chunk = "event: \(name)\ndata: \(data.compactJSON)\n\n"
            if let limit = turn.dropAfterBytes, written + chunk.utf8.count > limit {
                chunk = String(decoding: Array(chunk.utf8).prefix(max(0, limit - written)), as: UTF8.self)
                try await writer.write(ByteBuffer(string: chunk))
                throw DroppedConnection()
            }
            written += chunk.utf8.count
            try await writer.write(ByteBuffer(string: chunk))
        }
        let pause: Duration? = turn.tokensPerSecond > 0 ? .seconds(1 / turn.tokensPerSecond) : nil
        var first = true
        func beforeDelta() async throws {
            if first {
                first = false
                if turn.ttftMilliseconds > 0 { try await Task.sleep(for: .milliseconds(turn.ttftMilliseconds)) }
            } else if let pause {
                try await Task.sleep(for: pause)
            }
        }
        try await send(
            "message_start",
            .object([
                "type": .string("message_start"),
                "message": .object([
                    "id": .string(id), "type": .string("message"), "role": .string("assistant"), "model": .string(model),
                    "content": .array([]), "stop_reason": .null, "stop_sequence": .null,
                    "usage": .object(["input_tokens": .number(Double(inputTokens)), "output_tokens": .number(1)]),
                ]),
            ]))
        var index = 0
        if let thinking = turn.thinking {
            try await send(
                "content_block_start",
                .object([
                    "type": .string("content_block_start"), "index": .number(Double(index)),
                    "content_block": .object(["type": .string("thinking"), "thinking": .string(""), "signature": .string("")]),
                ]))
            for piece in Self.tokens(thinking) {
                try await beforeDelta()
                try await send(
                    "content_block_delta",
                    .object([
                        "type": .string("content_block_delta"), "index": .number(Double(index)),
                        "delta": .object(["type": .string("thinking_delta"), "thinking": .string(piece)]),
                    ]))
            }
            try await send(
                "content_block_delta",
                .object([
                    "type": .string("content_block_delta"), "index": .number(Double(index)),
                    "delta": .object(["type": .string("signature_delta"), "signature": .string("scripted")]),
                ]))
            try await send("content_block_stop", .object(["type": .string("content_block_stop"), "index": .number(Double(index))]))
            index += 1
        }
        if let text {
            try await send(
                "content_block_start",
                .object([
                    "type": .string("content_block_start"), "index": .number(Double(index)),
                    "content_block": .object(["type": .string("text"), "text": .string("")]),
                ]))
            for piece in Self.tokens(text) {
                try await beforeDelta()
                try await send(
                    "content_block_delta",
                    .object([
                        "type": .string("content_block_delta"), "index": .number(Double(index)),
                        "delta": .object(["type": .string("text_delta"), "text": .string(piece)]),
                    ]))
            }
            try await send("content_block_stop", .object(["type": .string("content_block_stop"), "index": .number(Double(index))]))
            index += 1
        }
        for (offset, use) in turn.toolUses.enumerated() {
            try await send(
                "content_block_start",
                .object([
                    "type": .string("content_block_start"), "index": .number(Double(index)),
                    "content_block": .object([
                        "type": .string("tool_use"), "id": .string(toolIds[offset]), "name": .string(use.name), "input": .object([:]),
                    ]),
                ]))
            let json = use.input.compactJSON
            for piece in Self.chunks(json, size: 16) {
                try await beforeDelta()
                try await send(
                    "content_block_delta",
                    .object([
                        "type": .string("content_block_delta"), "index": .number(Double(index)),
                        "delta": .object(["type": .string("input_json_delta"), "partial_json": .string(piece)]),
                    ]))
            }
            try await send("content_block_stop", .object(["type": .string("content_block_stop"), "index": .number(Double(index))]))
            index += 1
        }
        try await send(
            "message_delta",
            .object([
                "type": .string("message_delta"),
                "delta": .object(["stop_reason": .string(stopReason), "stop_sequence": .null]),
                "usage": .object(["output_tokens": .number(Double(outputTokens))]),
            ]))
        try await send("message_stop", .object(["type": .string("message_stop")]))
        try await writer.finish(nil)
    }

    struct DroppedConnection: Error {}

    /// Word-ish tokens: each word with the space before it.
    static func tokens(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in text {
            if character == " " && !current.isEmpty && current != " " {
                pieces.append(current)
                current = ""
            }
            current.append(character)
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    static func chunks(_ text: String, size: Int) -> [String] {
        var result: [String] = []
        var index = text.startIndex
        while index < text.endIndex {
            let end = text.index(index, offsetBy: size, limitedBy: text.endIndex) ?? text.endIndex
            result.append(String(text[index..<end]))
            index = end
        }
        return result
    }
}
