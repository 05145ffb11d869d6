import DroverCore
import DroverTesting
import Foundation
import Testing

@Suite struct SessionEventRoundTripTests {
    @Test func everyFixtureLineDecodesAndReencodesAsItCame() throws {
        let lines = try Fixtures.lines("session_events.jsonl")
        #expect(lines.count > 100)
        var seen: Set<SessionEventType> = []
        for (number, text) in lines {
            let input = try Fixtures.json(text)
            let event: SessionEvent
            do {
                event = try JSONDecoder().decode(SessionEvent.self, from: Data(text.utf8))
            } catch {
                Issue.record("line \(number) does not decode: \(error)\n\(text)")
                continue
            }
            let output = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(event))
            #expect(output == input, "line \(number) changed in a round trip:\n in: \(text)\nout: \(output)")
            #expect(event.wireValue == input, "line \(number): wireValue differs")
            #expect(event.type.rawValue == input.objectValue?["type"]?.stringValue)
            let isOther = if case .other = event.payload { true } else { false }
            #expect(isOther == !SessionEventPayload.isTyped(event.type), "line \(number): \(event.type.rawValue) decoded as \(event.payload)")
            seen.insert(event.type)
        }
        #expect(seen == Set(SessionEventType.allCases), "fixture lacks \(Set(SessionEventType.allCases).subtracting(seen).map(\.rawValue))")
    }

    @Test func typedCasesCarryTheFields() throws {
        let events = try Fixtures.lines("session_events.jsonl").map { try SessionEvent(wire: Fixtures.json($0.text)) }
        let byId = Dictionary(events.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })

        guard case .sessionStatusIdle(let idle)? = byId["sevt_s2"]?.payload else {
            Issue.record("sevt_s2")
            return
        }
        #expect(idle.stopReason == .requiresAction(eventIds: ["sevt_a3", "sevt_a5"]))
        #expect(idle.stopDetails == nil)

        guard case .sessionStatusIdle(let refusal)? = byId["sevt_s3"]?.payload else {
            Issue.record("sevt_s3")
            return
        }
        #expect(refusal.stopReason == .refusal)
        #expect(refusal.stopDetails?.explanation == "Refused.")
        #expect(refusal.stopDetails?.extras.explicitNulls == ["category"])

        guard case .sessionError(let error)? = byId["sevt_s4"]?.payload else {
            Issue.record("sevt_s4")
            return
        }
        #expect(error.error.type == .repositoryCloneError)
        #expect(error.error.message == "clone failed")
        #expect(error.error.retryStatus == .terminal)

        guard case .sessionUpdated(let updated)? = byId["sevt_s6"].map(\.payload) else {
            Issue.record("sevt_s6")
            return
        }
        #expect(updated.budget == nil && updated.title == "Renamed")
        #expect(byId["sevt_s6"]?.extras.explicitNulls == ["budget"], "a removed budget stays distinguishable from an unchanged one")

        guard case .agentToolUse(let tool)? = byId["sevt_a3b"]?.payload else {
            Issue.record("sevt_a3b")
            return
        }
        #expect(tool.evaluatedPermission == .deny)
        #expect(tool.evaluation == .auto(.deny(reasonCode: "high_risk")))

        guard case .spanModelRequestEnd(let end)? = byId["sevt_m2"]?.payload else {
            Issue.record("sevt_m2")
            return
        }
        #expect(end.modelUsage.cacheReadInputTokens == 5 && end.modelUsage.speed == "fast" && end.isError == false)

        guard case .userCustomToolResult(let result)? = byId["sevt_u6"]?.payload, case .searchResult(let search)? = result.content?.first else {
            Issue.record("sevt_u6")
            return
        }
        #expect(search.content.map(\.text) == ["Swift is a language."])
        #expect(byId["sevt_u4"]?.processedAt == nil)
        #expect(byId["sevt_a1"]?.processedAt == "2026-04-01T12:00:02.500000Z")
    }

    @Test func everyStopReasonAndManyErrorKindsAreCovered() throws {
        let events = try Fixtures.lines("session_events.jsonl").map { try SessionEvent(wire: Fixtures.json($0.text)) }
        var stopReasons: Set<String> = []
        var errorTypes: Set<SessionErrorType> = []
        for event in events {
            if case .sessionStatusIdle(let idle) = event.payload, case .object(let object) = idle.stopReason.wireValue {
                if case .other = idle.stopReason { Issue.record("untyped stop reason \(object)") }
                stopReasons.insert(object["type"]?.stringValue ?? "")
            }
            if case .sessionError(let error) = event.payload { errorTypes.insert(error.error.type) }
        }
        #expect(stopReasons == ["end_turn", "requires_action", "retries_exhausted", "budget_reached", "refusal"])
        #expect(errorTypes.count == 15)
    }

    @Test func unknownFieldsBlocksAndNullsSurvive() throws {
        let text = """
            {"id":"e1","type":"agent.message","processed_at":"2026-04-01T12:00:00Z","future_field":{"a":[1,null]},
             "content":[{"type":"text","text":"hi","citations":null},{"type":"hologram","frames":3}]}
            """
        let input = try Fixtures.json(text)
        let event = try SessionEvent(wire: input)
        guard case .agentMessage(let message) = event.payload else {
            Issue.record("\(event.payload)")
            return
        }
        #expect(message.content.count == 2)
        #expect(message.content.last == .unknown(["type": .string("hologram"), "frames": .number(3)]))
        #expect(event.wireValue == input)
    }

    @Test func absentOptionalsStayAbsentAndBuiltEventsEncodeCleanly() throws {
        let event = SessionEvent(
            id: "sevt_1", processedAt: "2026-04-01T12:00:00.000001Z",
            payload: .agentToolResult(AgentToolResult(toolUseId: "sevt_0", content: [.text(TextBlock(text: "ok"))])))
        let json = try #require(event.wireValue.objectValue)
        #expect(Set(json.keys) == ["id", "type", "processed_at", "tool_use_id", "content"])
        #expect(try SessionEvent(wire: event.wireValue) == event)

        let idle = SessionEvent(id: "sevt_2", processedAt: nil, payload: .sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))
        #expect(
            idle.wireValue
                == .object(["id": .string("sevt_2"), "type": .string("session.status_idle"), "stop_reason": .object(["type": .string("end_turn")])]))
    }

    @Test func decodingErrorsNameTheField() throws {
        let text = #"[{"id":"e","type":"agent.message","processed_at":"x","content":[{"type":"text"}]}]"#
        #expect {
            try JSONDecoder().decode([SessionEvent].self, from: Data(text.utf8))
        } throws: { error in
            "\(error)".contains("[0].content[0].text: missing; expected a string")
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: Fixtures.packageRoot.appendingPathComponent(".venv/bin/python").path)))
    func fixturesMatchTheInstalledSDK() async throws {
        let (status, output) = try await runProgram(
            Fixtures.packageRoot.appendingPathComponent(".venv/bin/python").path,
            [Fixtures.packageRoot.appendingPathComponent("Tests/fixtures/generate_session_events.py").path, "--check"]
        )
        #expect(status == 0, "run Tests/fixtures/generate_session_events.py to regenerate the fixtures: \(output)")
    }
}
