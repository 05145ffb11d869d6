import DroverCore
import Testing

@Suite struct IncomingSessionEventTests {
    @Test func everyClientFixtureDecodes() throws {
        for (number, text) in try Fixtures.lines("client_events.jsonl") {
            let input = try #require(try Fixtures.json(text).objectValue)
            let event = try IncomingSessionEvent(clientJSON: .object(input), path: "events[\(number - 1)]")
            #expect(event.type.rawValue == input["type"]?.stringValue)
            #expect(SessionEventPayload.isTyped(event.type) == !(event.payload.isOther))
            let stored = event.stamped(id: "sevt_\(number)", processedAt: "2026-04-01T12:00:00.000000Z")
            let output = try #require(stored.wireValue.objectValue)
            for (key, value) in input where value != .null {
                #expect(output[key] == value, "line \(number): \(key)")
            }
            #expect(try SessionEvent(wire: stored.wireValue) == stored)
        }
    }

    @Test func batchDecodes() throws {
        let body = try JSONValue.parse(#"{"events":[{"type":"user.message","content":[{"type":"text","text":"hi"}]},{"type":"user.interrupt"}]}"#)
        let events = try IncomingSessionEvent.decodeBatch(body)
        #expect(events.map(\.type) == [.userMessage, .userInterrupt])
        #expect(events[0].payload == .userMessage(UserMessage(content: [.text(TextBlock(text: "hi"))])))
    }

    @Test(arguments: [
        (#"{"type":"user.mesage","content":[]}"#, "events[0].type", "\"user.mesage\" is not an event type; send one of user.message,"),
        (#"{"type":"agent.message","content":[]}"#, "events[0].type", "is written by the server, not sent by clients; send one of user.message"),
        (#"{"content":[]}"#, "events[0].type", "missing; expected an event type, one of user.message"),
        (#"{"type":"user.message","content":"hi"}"#, "events[0].content", "expected an array of content blocks, got a string"),
        (#"{"type":"user.message"}"#, "events[0].content", "missing; expected an array of content blocks"),
        (#"{"type":"user.message","content":[{"type":"text","text":1}]}"#, "events[0].content[0].text", "expected a string, got a number"),
        (
            #"{"type":"user.message","content":[{"type":"image","source":{"type":"url"}}]}"#, "events[0].content[0].source.url",
            "missing; expected a string"
        ),
        (
            #"{"type":"user.message","content":[{"type":"search_result","source":"s","title":"t","citations":{"enabled":true},"content":[]}]}"#,
            "events[0].content[0].type", "\"search_result\" is not allowed in user.message"
        ),
        (#"{"type":"user.message","content":[{"type":"hologram"}]}"#, "events[0].content[0].type", "\"hologram\" is not allowed in user.message"),
        (#"{"type":"user.tool_confirmation","result":"allow"}"#, "events[0].tool_use_id", "missing; expected a string"),
        (
            #"{"type":"user.tool_confirmation","result":"maybe","tool_use_id":"t"}"#, "events[0].result",
            "expected one of \"allow\", \"deny\", got a string"
        ),
        (
            #"{"type":"user.tool_confirmation","result":"allow","tool_use_id":"t","deny_message":"no"}"#, "events[0].deny_message",
            "only allowed when result is \"deny\""
        ),
        (
            #"{"type":"user.tool_confirmation","result":"allow","tool_use_id":"t","session_thread_id":"s"}"#, "events[0].session_thread_id",
            "is set by the server"
        ),
        (
            #"{"type":"user.custom_tool_result","custom_tool_use_id":"c","is_error":"yes"}"#, "events[0].is_error",
            "expected a boolean (true or false), got a string"
        ),
        (#"{"type":"user.interrupt","id":"sevt_1"}"#, "events[0].id", "is set by the server; leave it out"),
        (#"{"type":"user.interrupt","reason":"stop"}"#, "events[0].reason", "unknown field for user.interrupt; it accepts session_thread_id, type"),
        (#""user.message""#, "events[0]", "expected an event object"),
    ])
    func badClientInputNamesTheField(event: String, path: String, message: String) throws {
        let body = try JSONValue.parse(#"{"events":[\#(event)]}"#)
        let error = #expect(throws: WireDecodingError.self) { try IncomingSessionEvent.decodeBatch(body) }
        #expect(error?.path == path, "\(error?.description ?? "no error")")
        #expect(error?.message.contains(message) == true, "\(error?.description ?? "no error")")
    }

    @Test func badBodies() throws {
        #expect(throws: WireDecodingError(path: "events", message: "is empty; send at least one event")) {
            try IncomingSessionEvent.decodeBatch(try JSONValue.parse(#"{"events":[]}"#))
        }
        let error = #expect(throws: WireDecodingError.self) { try IncomingSessionEvent.decodeBatch(try JSONValue.parse(#"{"event":[]}"#)) }
        #expect(error?.description == "events: missing; expected an array of events")
    }

    @Test func acceptedTypesFollowTheSDKParams() {
        #expect(
            Set(IncomingSessionEvent.acceptedTypes.map(\.rawValue)) == [
                "user.message", "user.interrupt", "user.tool_confirmation", "user.custom_tool_result",
                "user.define_outcome", "user.tool_result", "system.message",
            ])
    }
}

extension SessionEventPayload {
    var isOther: Bool { if case .other = self { true } else { false } }
}
