import DroverCore
import DroverDatabase
import DroverRedis
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

private func message(_ text: String) -> NewEvent {
    NewEvent(.agentMessage(AgentMessage(content: [.text(text)])))
}

private func withLog<T>(_ body: (SessionLog, MirrorDatabase, RedisClient, RedisServerFixture) async throws -> T) async throws -> T {
    try await withRedisClient(poolSize: 8) { client, server in
        let path = temporaryDatabasePath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let database = try MirrorDatabase(path: path)
        return try await body(SessionLog(redis: client, database: database), database, client, server)
    }
}

@Suite("Session log")
struct SessionLogTests {
    @Test("appends get gapless seq, ids and processed_at; the wire JSON carries them")
    func appendAssignsSeq() async throws {
        try await withLog { log, _, _, _ in
            let session = SessionID.make()
            #expect(try await log.create(session))
            #expect(try await log.create(session) == false)
            let first = try await log.append(session, [message("a"), message("b")])
            #expect(first.firstSeq == 1 && first.lastSeq == 2 && !first.duplicate)
            let second = try await log.append(
                session, [NewEvent(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))])
            #expect(second.firstSeq == 3)
            let events = try await log.read(session)
            #expect(events.map(\.seq) == [1, 2, 3])
            #expect(Set(events.map(\.id)).count == 3)
            #expect(events[0].id.hasPrefix("sevt_"))
            let json = try #require(events[0].value.objectValue)
            #expect(json["type"] == .string("agent.message"))
            #expect(json["processed_at"]?.stringValue == first.processedAt)
            #expect(first.processedAt.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"#, options: .regularExpression) != nil)
            // processed_at is Redis' clock: within a minute of ours.
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let parsed = try #require(formatter.date(from: String(first.processedAt.prefix(23)) + "Z"))
            #expect(abs(parsed.timeIntervalSinceNow) < 60)
            #expect(try await log.meta(session)?.status == "idle")
        }
    }

    @Test("a stale fence is refused and leaves no trace in Redis or SQLite")
    func fencing() async throws {
        try await withLog { log, database, client, _ in
            let session = SessionID.make()
            try await log.create(session)
            let old = try await log.takeFence(session)
            _ = try await log.append(session, [message("from old")], fence: old)
            let new = try await log.takeFence(session)
            #expect(new.epoch == old.epoch + 1)
            await #expect(throws: SessionLogError.staleFence(session: session.rawValue, fence: old.epoch, current: new.epoch)) {
                try await log.append(session, [message("zombie write")], fence: old)
            }
            _ = try await log.append(session, [message("from new")], fence: new)
            // Client events need no fence and are not affected.
            _ = try await log.append(session, [NewEvent(.userMessage(UserMessage(content: [])))])
            try await Recorder(redis: client, database: database).runOnce()
            let fromRedis = try await log.read(session)
            let fromSQLite = try await database.events(session: session.rawValue, afterSeq: 0, limit: 100)
            for events in [fromRedis, fromSQLite] {
                #expect(events.map(\.seq) == [1, 2, 3])
                #expect(!events.contains { $0.json.contains("zombie") })
            }
        }
    }

    @Test("an append whose reply is lost after Redis ran it lands once, fenced or not, with or without a client key")
    func lostReplyAppendsOnce() async throws {
        try await withLog { log, _, _, server in
            guard case .unix(let socket) = server.url.endpoint else {
                Issue.record("the fixture is not on a unix socket")
                return
            }
            let proxy = try ReplyDroppingProxy(upstream: socket, path: server.directory.appendingPathComponent("proxy.sock").path)
            defer { proxy.close() }
            var options = RedisClientOptions()
            options.poolSize = 1
            let client = try await RedisClient.connect(RedisURL(endpoint: .unix(path: proxy.path)), options: options)
            defer { client.close() }
            let flaky = SessionLog(redis: client, database: nil)
            let session = SessionID.make()
            try await flaky.create(session)
            // Loads the script first: a NOSCRIPT reply is not the one to lose.
            _ = try await flaky.append(session, [message("warm-up")])
            let fence = try await flaky.takeFence(session)
            let cases: [(String, SessionFence?, String?)] = [
                ("fenced", fence, nil), ("unfenced", nil, nil), ("keyed", nil, "client-key-1"),
            ]
            for (label, fence, key) in cases {
                proxy.dropNextReply()
                let result = try await flaky.append(session, [message(label), message("\(label) 2")], fence: fence, clientKey: key)
                #expect(!result.duplicate, "\(label): the caller's own append is not a duplicate of anything")
                // Its events, as the first attempt stored them, come back with the retry's reply.
                let stored = try await log.read(session, afterSeq: result.firstSeq - 1, limit: 2)
                #expect(result.events == stored && stored.count == 2, "\(label): \(result.events) against \(stored)")
            }
            #expect(proxy.dropped == 3)
            let texts = try await log.read(session).map(\.json).map { json in cases.map(\.0).filter { json.contains("\"\($0)\"") } }
            #expect(texts.flatMap { $0 } == cases.map(\.0), "each append landed once, in order: \(texts)")
        }
    }

    @Test("100 concurrent appenders on 100 sessions: every event lands once, seq gapless per session")
    func concurrentAppenders() async throws {
        try await withLog { log, database, client, _ in
            let sessions = (0..<100).map { _ in SessionID.make() }
            for session in sessions { try await log.create(session) }
            let written = try await withThrowingTaskGroup(of: [String: Int].self) { group in
                for appender in 0..<100 {
                    group.addTask {
                        var counts: [String: Int] = [:]
                        for round in 0..<20 {
                            let session = sessions[(appender * 7 + round * 13) % sessions.count]
                            let size = 1 + (appender + round) % 3
                            let events = (0..<size).map { message("a\(appender)-r\(round)-\($0)") }
                            _ = try await log.append(session, events, clientKey: "a\(appender)-r\(round)")
                            counts[session.rawValue, default: 0] += size
                        }
                        return counts
                    }
                }
                return try await group.reduce(into: [String: Int]()) { total, part in total.merge(part, uniquingKeysWith: +) }
            }
            let recorder = Recorder(redis: client, database: database)
            try await recorder.runOnce()
            var total = 0
            for session in sessions {
                let expected = written[session.rawValue] ?? 0
                total += expected
                let events = try await log.read(session, limit: 10_000)
                #expect(events.map(\.seq) == (0..<expected).map { Int64($0 + 1) })
                #expect(Set(events.map(\.json)).count == expected)
                let mirrored = try await database.events(session: session.rawValue, afterSeq: 0, limit: 10_000)
                #expect(mirrored.map(\.seq) == events.map(\.seq))
            }
            #expect(try await database.eventCount() == total)
            #expect(recorder.stats.eventsRecorded == total)
            // What `drover recorder status` shows: the figures this recorder published in Redis.
            let published = try #require(try await Recorder.published(client)[recorder.options.consumer])
            #expect(published["events_recorded"] == String(total))
            #expect(published["batches"] == String(recorder.stats.batches))
        }
    }

    @Test("a recorder that is stopped stops at once, not when its blocking read times out")
    func recorderStopsAtOnce() async throws {
        var options = Recorder.Options()
        // A read that would block for an hour: only cancelling it ends the run in time.
        options.block = .seconds(3600)
        try await withRunningRecorder(options) { log, database, _, session in
            _ = try await log.append(session, [message("recorded while running")])
            #expect(try await eventually { try await database.events(session: session.rawValue, afterSeq: 0, limit: 10).count == 1 })
        }
    }

    @Test("events that trickle in while the recorder lingers after a small batch go into one batch, not one each")
    func recorderLingers() async throws {
        var options = Recorder.Options()
        // Long enough that the appends below land inside it on any machine.
        options.linger = .seconds(5)
        try await withRunningRecorder(options) { log, database, recorder, session in
            _ = try await log.append(session, [message("the first")])
            #expect(try await eventually { recorder.stats.eventsRecorded == 1 })
            for index in 1...5 { _ = try await log.append(session, [message("one of five, \(index)")]) }
            #expect(try await eventually { recorder.stats.eventsRecorded == 6 })
            #expect(recorder.stats.batches == 2, "\(recorder.stats)")
            #expect(try await database.events(session: session.rawValue, afterSeq: 0, limit: 10).count == 6)
        }
    }

    /// A recorder with `options` running over a fresh session's log; stopped after `body`, which
    /// it must do within a minute.
    private func withRunningRecorder(
        _ options: Recorder.Options, _ body: (SessionLog, MirrorDatabase, Recorder, SessionID) async throws -> Void
    ) async throws {
        try await withLog { log, database, client, _ in
            let recorder = Recorder(redis: client, database: database, options: options)
            let session = SessionID.make()
            try await log.create(session)
            let running = Task { try await recorder.run() }
            defer { running.cancel() }
            try await body(log, database, recorder, session)
            running.cancel()
            try await finishing(within: .seconds(60)) { _ = try? await running.value }
        }
    }

    @Test("a tool use takes one result: racing answers from a worker, a lease sweeper and a turn land once")
    func oneResultPerToolUse() async throws {
        try await withLog { log, _, _, _ in
            let session = SessionID.make()
            try await log.create(session)
            let use = try await log.append(session, [NewEvent(.agentToolUse(AgentToolUse(name: "bash", input: ["command": .string("ls")])))])
            let useId = SessionLog.eventID(session, seq: use.firstSeq)
            // Before this rule, each of these would have landed, and the model been sent two
            // results for one call (which it refuses), or a worker's late result after the error.
            let answers: [SessionEventPayload] = [
                .userToolResult(UserToolResult(toolUseId: useId, content: [.text("from the worker")], isError: false)),
                .userToolResult(UserToolResult(toolUseId: useId, content: [.text("lease lapsed")], isError: true)),
                .agentToolResult(AgentToolResult(toolUseId: useId, content: [.text("interrupted")], isError: true)),
            ]
            let landed = await withTaskGroup(of: Bool.self) { group in
                for answer in answers {
                    group.addTask {
                        do {
                            try await log.append(session, [answer])
                            return true
                        } catch SessionLogError.alreadyAnswered(_, let toolUse) {
                            return toolUse != useId
                        } catch {
                            return true
                        }
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(landed == 1)
            let results = try await log.read(session).filter { $0.payload?.answeredToolUse == useId }
            #expect(results.count == 1)
            // A batch that answers an answered call writes nothing at all, not even its other events.
            await #expect(throws: SessionLogError.alreadyAnswered(session: session.rawValue, toolUse: useId)) {
                try await log.append(session, [message("kept?"), NewEvent(answers[1])])
            }
            #expect(try await log.read(session).count == 2)
        }
    }

    @Test("an event id gives its sequence number back only for its own session, and hostile ids give none")
    func seqFromEventID() {
        let session = SessionID.make()
        for seq: Int64 in [1, 42, 999_999, 1_000_000, 123_456_789_012] {
            #expect(SessionLog.seq(ofEventID: SessionLog.eventID(session, seq: seq), in: session) == seq)
        }
        let other = SessionID.make()
        let prefix = "sevt_\(session.idPart)_"
        for hostile in [
            SessionLog.eventID(other, seq: 7), prefix, prefix + "12345", prefix + "000000", prefix + "-00001", prefix + "00001x",
            prefix + "٠٠٠٠٠٣", prefix + String(repeating: "9", count: 40), prefix + "+00001", "sevt_" + session.idPart + "-000001", "",
        ] {
            #expect(SessionLog.seq(ofEventID: hostile, in: session) == nil, "\(hostile)")
        }
    }

    @Test("a retried append with the same client key writes nothing and returns the first result")
    func idempotentAppend() async throws {
        try await withLog { log, _, _, _ in
            let session = SessionID.make()
            try await log.create(session)
            let first = try await log.append(session, [message("x"), message("y")], clientKey: "req-1")
            let retry = try await log.append(session, [message("x"), message("y")], clientKey: "req-1")
            #expect(retry.duplicate)
            #expect(retry.firstSeq == first.firstSeq && retry.lastSeq == first.lastSeq && retry.processedAt == first.processedAt)
            #expect(try await log.read(session).count == 2)
            // The first reply carries the events as stored; a duplicate's cannot vouch for them.
            #expect(first.events == (try await log.read(session)) && first.events.map(\.seq) == [1, 2])
            #expect(first.events.allSatisfy { $0.event != nil })
            #expect(retry.events.isEmpty)
        }
    }

    @Test("after FLUSHALL, wake rebuilds the session from SQLite alone, and the log continues")
    func wakeFromSQLite() async throws {
        try await withLog { log, database, client, _ in
            let session = SessionID.make()
            let config = #"{"type":"cloud","packages":{"pip":["pytest"]}}"#
            try await log.create(session, agentJSON: #"{"model":"m"}"#, environmentJSON: config)
            let fence = try await log.takeFence(session)
            for n in 0..<50 { _ = try await log.append(session, [message("m\(n)")], fence: fence) }
            _ = try await log.append(
                session, [NewEvent(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))], fence: fence)
            let before = try await log.wake(session)
            #expect(before.source == .redis)
            let hot = try await log.createdWith(session)
            #expect(hot.agent == #"{"model":"m"}"# && hot.environment == config)
            try await Recorder(redis: client, database: database).runOnce()

            try await client.send("FLUSHALL")
            #expect(try await log.meta(session) == nil)
            let after = try await log.wake(session)
            #expect(after.events == before.events)
            #expect(after.lastSeq == 51)
            #expect(after.status == "idle")
            #expect(after.source == .sqlite)
            #expect(try await log.environmentJSON(session) == config, "the environment config survives with the agent")
            #expect(try await log.agentJSON(session) == #"{"model":"m"}"#)
            // The restored meta holds neither: both come from SQLite's row.
            let cold = try await log.createdWith(session)
            #expect(cold.agent == #"{"model":"m"}"# && cold.environment == config)
            // The old writer is fenced out; a new one continues the sequence without a gap.
            await #expect(throws: SessionLogError.self) { try await log.append(session, [message("stale")], fence: fence) }
            let next = try await log.takeFence(session)
            #expect(next.epoch > fence.epoch)
            #expect(try await log.append(session, [message("resumed")], fence: next).firstSeq == 52)
            #expect(try await log.read(session, afterSeq: 50).map(\.seq) == [51, 52])
        }
    }

    @Test("retention trims a quiet, fully mirrored session from Redis; reads fall back to SQLite")
    func retention() async throws {
        try await withLog { log, database, client, _ in
            let session = SessionID.make()
            try await log.create(session)
            for n in 0..<30 { _ = try await log.append(session, [message("m\(n)")]) }
            var options = Recorder.Options()
            options.retentionIdle = .zero
            let recorder = Recorder(redis: client, database: database, options: options)
            try await recorder.runOnce()
            #expect(try await recorder.applyRetention() == 1)
            #expect(try await log.meta(session)?.trimmedThrough == 30)
            let keys = try await client.send(["KEYS", "drover:*:s:\(session.rawValue):log"]).array ?? []
            #expect(try await client.send(["XLEN", try #require(keys.first?.string)]).int == 0)
            #expect(try await log.read(session, afterSeq: 10, limit: 5).map(\.seq) == [11, 12, 13, 14, 15])
            _ = try await log.append(session, [message("new")])
            #expect(try await log.read(session, afterSeq: 28).map(\.seq) == [29, 30, 31])
            #expect(try await log.wake(session).source == .both)
        }
    }

    @Test("a streaming wake hands the log over a chunk at a time, with no gap even when retention trims Redis mid-wake")
    func wakeStreamsThroughATrim() async throws {
        try await withLog { log, database, client, _ in
            let session = SessionID.make()
            try await log.create(session)
            for n in 0..<25 { _ = try await log.append(session, [message("m\(n)")]) }
            var options = Recorder.Options()
            options.retentionIdle = .zero
            let recorder = Recorder(redis: client, database: database, options: options)
            try await recorder.runOnce()
            var chunks: [[Int64]] = []
            let woken = try await log.wake(session, chunkSize: 10) { events in
                chunks.append(events.map(\.seq))
                // Retention drops the Redis copy after the first chunk was read from it.
                if chunks.count == 1 {
                    let trimmed = try await recorder.applyRetention()
                    #expect(trimmed == 1)
                }
            }
            #expect(chunks.flatMap { $0 } == Array(1...25))
            #expect(chunks.allSatisfy { $0.count <= 10 })
            #expect(woken.lastSeq == 25)
            #expect(woken.source == .both)
        }
    }

    @Test("tail replays what is there, then follows new appends")
    func tail() async throws {
        try await withLog { log, _, _, _ in
            let session = SessionID.make()
            try await log.create(session)
            _ = try await log.append(session, [message("old")])
            let stream = log.tail(session, afterSeq: 0)
            let reader = Task {
                var seen: [Int64] = []
                for try await event in stream {
                    seen.append(event.seq)
                    if seen.count == 3 { break }
                }
                return seen
            }
            try await Task.sleep(for: .milliseconds(100))
            _ = try await log.append(session, [message("new1"), message("new2")])
            #expect(try await reader.value == [1, 2, 3])
        }
    }

    @Test("bad input gets a clear error naming the field; nothing appended before is lost")
    func badInput() async throws {
        try await withLog { log, _, _, _ in
            let session = SessionID.make()
            try await log.create(session)
            _ = try await log.append(session, [message("kept")])
            let huge = message(String(repeating: "x", count: SessionLog.defaultMaximumEventBytes))
            await #expect(throws: SessionLogError.eventTooLarge(index: 1, bytes: huge.json.utf8.count, limit: SessionLog.defaultMaximumEventBytes)) {
                try await log.append(session, [message("fine"), huge])
            }
            let cases: [(String, String)] = [
                ("{not json", "body"),
                (#"{"events": [{"type": "user.nonsense"}]}"#, "events[0].type"),
                (#"{"events": [{"type": "user.message", "content": []}, {"type": "agent.message", "content": []}]}"#, "events[1].type"),
                (#"{"events": [{"content": []}]}"#, "events[0].type"),
                (#"{"events": []}"#, "events"),
                (#"{"events": [42]}"#, "events[0]"),
                (#"{"events": [{"type": "user.message", "content": "not a list"}]}"#, "events[0].content"),
                (#"{"events": [{"type": "user.message", "content": [{"type": "text"}]}]}"#, "events[0].content[0].text"),
            ]
            for (body, field) in cases {
                do {
                    _ = try NewEvent.parseClientEvents(body)
                    Issue.record("accepted \(body)")
                } catch let error as SessionLogError {
                    #expect(error.field == field, "\(body): \(error)")
                    #expect(error.description.contains("Fix:"))
                }
            }
            let parsed = try NewEvent.parseClientEvents(#"{"events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]}"#)
            _ = try await log.append(session, parsed)
            await #expect(throws: SessionLogError.sessionNotFound("sesn_missing")) {
                try await log.append(try SessionID("sesn_missing"), [message("x")])
            }
            do {
                _ = try SessionID("bad id/../")
                Issue.record("a session id with '/' and a space was accepted")
            } catch let error as FieldError {
                #expect(error.field == "session_id" && error.description.contains("Fix:"))
            }
            _ = try await log.append(session, [NewEvent(.sessionStatusTerminated)])
            await #expect(throws: SessionLogError.sessionTerminated(session.rawValue)) {
                try await log.append(session, [message("after the end")])
            }
            #expect(try await log.read(session).map(\.type) == ["agent.message", "user.message", "session.status_terminated"])
        }
    }
}
