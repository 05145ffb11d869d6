import DroverBrain
import DroverCore
import DroverTools
import Foundation
import Testing

@Suite("Context builder")
struct ContextBuilderTests {
    /// A stored event as the log writes it: `id` and `processed_at` first, then the fields.
    func stored(_ seq: Int64, _ type: String, _ fields: String = "") -> StoredEvent {
        let json = #"{"id":"sevt_\#(seq)","processed_at":"2026-12-04T10:00:00.000000Z","type":"\#(type)"\#(fields.isEmpty ? "" : "," + fields)}"#
        return StoredEvent(session: "sesn_x", seq: seq, type: type, json: json)
    }

    @Test("the conversation comes from typed events: messages, tool uses and their results, MCP tools by their qualified names")
    func conversation() throws {
        let text = #""content":[{"type":"text","text":"#
        let events = [
            stored(1, "user.message", text + #""grade this"}]"#),
            stored(2, "session.status_running"),
            stored(3, "span.model_request_start"),
            stored(4, "agent.message", text + #""looking"},{"type":"image","source":{"type":"url","url":"http://x/y.png"}}]"#),
            stored(5, "agent.tool_use", #""name":"bash","input":{"command":"ls"}"#),
            stored(6, "agent.mcp_tool_use", #""mcp_server_name":"docs","name":"search","input":{}"#),
            stored(7, "agent.tool_result", #""tool_use_id":"sevt_5","content":[{"type":"text","text":"a.py"}]"#),
            stored(8, "agent.mcp_tool_result", #""mcp_tool_use_id":"sevt_6","is_error":true"#),
            // Answers a tool use that is not open: the model API would refuse it, so it is left out.
            stored(9, "agent.tool_result", #""tool_use_id":"sevt_404","content":[]"#),
            stored(10, "agent.custom_tool_use", #""name":"lookup","input":{"word":"x"}"#),
            stored(11, "user.custom_tool_result", #""custom_tool_use_id":"sevt_10","content":[{"type":"text","text":"found"}]"#),
            // Not a valid event (no content): skipped, never a crash.
            stored(12, "user.message"),
        ]
        let messages = ContextBuilder.messages(from: events)
        #expect(messages.map(\.role) == [.user, .assistant, .user, .assistant, .user])
        #expect(messages[0].content == [.text("grade this")])
        #expect(
            messages[1].content == [
                .text("looking"),
                .toolUse(id: "sevt_5", name: "bash", input: .object(["command": .string("ls")])),
                .toolUse(id: "sevt_6", name: "mcp__docs__search", input: .object([:])),
            ])
        #expect(
            messages[2].content == [
                .toolResult(toolUseId: "sevt_5", content: [.text("a.py")], isError: false),
                .toolResult(toolUseId: "sevt_6", content: [.text("(no output)")], isError: true),
            ])
        #expect(messages[3].content == [.toolUse(id: "sevt_10", name: "lookup", input: .object(["word": .string("x")]))])
        #expect(messages[4].content == [.toolResult(toolUseId: "sevt_10", content: [.text("found")], isError: false)])

        // Kept up one event at a time, it is the same conversation.
        var kept = ContextBuilder.Conversation()
        for event in events { kept.add(event) }
        #expect(kept.messages == messages)
    }

    @Test("a compaction replaces what it summarised with its summary, keeps the rest word for word, and closes the summarised calls")
    func compaction() throws {
        let text = #""content":[{"type":"text","text":"#
        let events = [
            stored(1, "user.message", text + #""review the corpus"}]"#),
            stored(2, "agent.tool_use", #""name":"bash","input":{"command":"ls"}"#),
            stored(3, "agent.custom_tool_use", #""name":"lookup","input":{}"#),
            stored(4, "agent.tool_result", #""tool_use_id":"sevt_2","content":[{"type":"text","text":"a.txt"}]"#),
            stored(5, "agent.message", text + #""reading a.txt"}]"#),
            stored(6, "agent.tool_use", #""name":"read","input":{"file_path":"a.txt"}"#),
            stored(7, "agent.tool_result", #""tool_use_id":"sevt_6","content":[{"type":"text","text":"abstract"}]"#),
            stored(8, "span.model_request_start"),
            stored(
                9, "span.model_request_end",
                #""model_request_start_id":"sevt_8","model_usage":{"input_tokens":1,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}"#
            ),
            stored(10, "agent.thread_context_compacted", #""summary":"listed the folder","first_kept_event_id":"sevt_5""#),
            // Answers a call the summary took in: the model API would refuse it, so it is left out.
            stored(11, "user.custom_tool_result", #""custom_tool_use_id":"sevt_3","content":[{"type":"text","text":"late"}]"#),
            stored(12, "user.message", text + #""and the next?"}]"#),
        ]
        let messages = ContextBuilder.messages(from: events)
        #expect(messages.map(\.role) == [.user, .assistant, .user])
        #expect(messages[0].content == [.text(ContextCompaction.continuation(summary: "listed the folder"))])
        #expect(
            messages[1].content == [
                .text("reading a.txt"), .toolUse(id: "sevt_6", name: "read", input: .object(["file_path": .string("a.txt")])),
            ])
        #expect(messages[2].content == [.toolResult(toolUseId: "sevt_6", content: [.text("abstract")], isError: false), .text("and the next?")])

        // A compaction that keeps nothing leaves the summary alone, and a second one summarises the first.
        let again =
            events[..<9] + [
                stored(10, "agent.thread_context_compacted", #""summary":"first""#),
                stored(11, "agent.thread_context_compacted", #""summary":"second""#),
            ]
        let twice = ContextBuilder.messages(from: Array(again))
        #expect(twice == [ModelMessage(role: .user, content: [.text(ContextCompaction.continuation(summary: "second"))])])
        var conversation = ContextBuilder.Conversation()
        conversation.add(contentsOf: again)
        #expect(conversation.starts == ["sevt_11"] && conversation.sizes.count == 1)
    }

    @Test("a stored event decodes once, on first use, and compares and encodes by its stored fields")
    func storedEvent() throws {
        let event = stored(1, "user.message", #""content":[{"type":"text","text":"hi"}]"#)
        guard case .userMessage(let message)? = event.payload else {
            Issue.record("not a user.message: \(String(describing: event.event))")
            return
        }
        #expect(message.content.count == 1 && event.event?.id == "sevt_1")
        let copy = try JSONDecoder().decode(StoredEvent.self, from: JSONEncoder().encode(event))
        #expect(copy == event && copy.payload == event.payload)
        #expect(stored(2, "user.message").event == nil)
    }
}
