import DroverCore
import Testing

@testable import DroverBrain
@testable import DroverHTTP

@Suite("SSE parser and message stream")
struct SSEParserTests {
    let stream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":12,"output_tokens":1}}}

        : a comment line
        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: ping
        data: {"type":"ping"}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: content_block_start
        data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"bash","input":{}}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"command\\": "}}

        event: content_block_delta
        data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\\"ls\\"}"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":1}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}

        event: message_stop
        data: {"type":"message_stop"}


        """

    @Test("events parse the same whatever the chunking, with CRLF or LF line ends", arguments: [1, 2, 7, 64, 100_000])
    func chunking(size: Int) throws {
        for text in [stream, stream.replacingOccurrences(of: "\n", with: "\r\n")] {
            var parser = SSEParser()
            var events: [SSEParser.Event] = []
            let bytes = Array(text.utf8)
            for start in stride(from: 0, to: bytes.count, by: size) {
                events += parser.feed(bytes[start..<min(start + size, bytes.count)])
            }
            if let last = parser.finish() { events.append(last) }
            #expect(
                events.map(\.name) == [
                    "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                    "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
                    "content_block_stop", "message_delta", "message_stop",
                ])
        }
    }

    @Test("multi-line data joins with newlines; an event without a name is a message")
    func multiLineData() {
        var parser = SSEParser()
        let events = parser.feed(Array("data: one\ndata: two\n\nid: 7\ndata:x\n\n".utf8))
        #expect(events == [SSEParser.Event(name: "message", data: "one\ntwo", id: nil), SSEParser.Event(name: "message", data: "x", id: "7")])
    }

    @Test("the accumulator reports deltas and builds the final message, tool input included")
    func accumulate() throws {
        var parser = SSEParser()
        var accumulator = MessageStreamAccumulator()
        var reports: [ModelStreamEvent] = []
        for event in parser.feed(Array(stream.utf8)) {
            reports += try accumulator.apply(name: event.name, data: event.data)
        }
        #expect(reports.first == .started(id: "msg_1", model: "m"))
        #expect(reports.contains(.textDelta(index: 0, text: "Hel")))
        #expect(reports.contains(.toolUseStarted(index: 1, id: "toolu_1", name: "bash")))
        guard case .completed(let message)? = reports.last else {
            Issue.record("no completed message: \(reports)")
            return
        }
        #expect(message.content == [.text("Hello"), .toolUse(id: "toolu_1", name: "bash", input: .object(["command": .string("ls")]))])
        #expect(message.stopReason == "tool_use")
        #expect(message.usage.inputTokens == 12 && message.usage.outputTokens == 30)
    }

    @Test("an error event in the stream becomes a typed, retryable error")
    func errorEvent() {
        var accumulator = MessageStreamAccumulator()
        #expect(throws: ModelError.api(status: 0, type: "overloaded_error", message: "Overloaded", retryAfter: nil)) {
            try accumulator.apply(name: "error", data: #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        }
        #expect(ModelError.api(status: 0, type: "overloaded_error", message: "", retryAfter: nil).isRetryable)
        #expect(!ModelError.api(status: 400, type: "invalid_request_error", message: "", retryAfter: nil).isRetryable)
    }
}
