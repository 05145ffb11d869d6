import DroverBrain
import DroverCore
import DroverDatabase
import DroverSelfHosted
import DroverSessionLog
import DroverTools
import Foundation
import Hummingbird

/// `/v1/sessions/{id}/events`: list (cursor pages in either order), send, and the live stream
/// (EventStream.swift). A sent event enqueues a turn, so the brain answers it.
struct EventController: Sendable {
    let store: ControlPlaneStore
    let log: SessionLog
    let inbox: SessionInbox
    /// One live tail per watched session, shared by its event streams.
    let hub: SessionEventHub
    /// Event streams open now per workspace, for the 429 limit, `/health` and the leak test.
    let openStreams: Locked<[String: Int]>
    let options: APIServer.Options
    /// Self-hosted environments' work queues: an interrupt reaches a session's worker through them.
    let work: WorkQueue
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.get(use: list).post(use: send).get("stream", use: stream)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let input = RequestInput(request)
        let query = try EventQuery(input)
        let (events, next) = try await events(SessionID(row.id), query)
        return jsonResponse(page(events.map(\.value), next: next))
    }

    @Sendable func send(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        guard row.archivedAt == nil else {
            throw APIError.invalid("session_id", "session \(row.id) is archived and accepts no events", fix: "create a new session")
        }
        let buffer = try await request.body.collect(upTo: APIServer.maximumBodyBytes)
        let events = try parseClientEvents(try RequestInput.utf8Text(buffer))
        let id = try SessionID(row.id)
        if context.environmentGrant != nil {
            for (index, event) in events.enumerated() where event.type != .userToolResult && event.type != .userCustomToolResult {
                throw APIError(
                    .forbidden, "permission_error",
                    "events[\(index)].type: an environment key sends only user.tool_result and user.custom_tool_result, not \(event.type.rawValue). Fix: send it with an API key"
                )
            }
        }
        let environment: EnvironmentConfig
        do {
            environment = try await log.environmentConfig(id)
        } catch let error as SessionLogError {
            throw APIError(sessionLogError: error)
        } catch {
            // A config that no longer parses has no hands elsewhere: its next turn ends the session.
            environment = .none
        }
        try await checkToolAnswers(events, session: id, environment: environment)
        let clientKey = request.headers[.init("idempotency-key")!]
        // An interrupt naming one child thread goes to that thread's log alone.
        let (forThreads, forSession) = try await threadInterrupts(events, session: id)
        var threadStored: [StoredEvent] = []
        for (thread, event) in forThreads {
            let appended = try await sessionLogCall { try await log.append(thread, [event], clientKey: clientKey.map { "\($0):\(thread)" }) }
            threadStored +=
                appended.events.isEmpty
                ? (try await sessionLogCall { try await log.read(thread, afterSeq: appended.firstSeq - 1, limit: 1) }) : appended.events
        }
        guard !forSession.isEmpty else { return jsonResponse(.object(["data": .array(threadStored.map(\.value))])) }
        let result = try await sessionLogCall { try await inbox.send(forSession, to: id, clientKey: clientKey).appended }
        if forSession.contains(where: { $0.type == .userInterrupt }) {
            try await interruptChildren(of: id)
        }
        if let remote = environment.selfHostedEnvironment, forSession.contains(where: { $0.type == .userInterrupt }) {
            // No turn runs while a worker has the calls: one is queued to close them, and the
            // worker reads `stopping` at its next heartbeat.
            _ = try await workQueueCall { try await work.stopSession(environment: remote, session: id) }
            try await sessionLogCall { _ = try await TurnQueue.enqueue(inbox.queue, session: id, name: inbox.turnQueue) }
        }
        // The reply carries what was stored; a retry under another call's key reads that call's.
        var stored = result.events
        if stored.isEmpty {
            stored = try await sessionLogCall {
                try await log.read(id, afterSeq: result.firstSeq - 1, limit: Int(result.lastSeq - result.firstSeq + 1))
            }
        }
        return jsonResponse(.object(["data": .array((threadStored + stored).map(\.value))]))
    }

    /// Splits off the interrupts that name one child thread of `session` (`session_thread_id`),
    /// each with that thread's log. One naming a thread the session does not have is a 404.
    func threadInterrupts(_ events: [NewEvent], session: SessionID) async throws -> ([(SessionID, NewEvent)], [NewEvent]) {
        var forThreads: [(SessionID, NewEvent)] = []
        var rest: [NewEvent] = []
        for event in events {
            guard case .userInterrupt(let interrupt) = event.payload, let named = interrupt.sessionThreadId, named != ThreadIDs.primary(of: session)
            else {
                rest.append(event)
                continue
            }
            guard ThreadIDs.isChild(named, of: session), let thread = try? SessionID(named),
                let origin = try? await log.agentSnapshot(thread)?.thread, origin.session == session
            else { throw APIError.notFound("session thread", String(named.prefix(80))) }
            forThreads.append((thread, event))
        }
        return (forThreads, rest)
    }

    /// An interrupt of a session reaches each of its child threads that is still live, and a
    /// coordinator waiting for their replies gets a turn to stop in.
    func interruptChildren(of session: SessionID) async throws {
        let threads = try await ThreadController.childIDs(log, of: session)
        guard !threads.isEmpty else { return }
        for raw in threads {
            guard let thread = try? SessionID(raw) else { continue }
            do {
                try await log.append(thread, [.userInterrupt(UserInterrupt())])
            } catch SessionLogError.sessionTerminated {
                continue
            } catch {
                throw APIError(sessionLogError: error)
            }
        }
        try await sessionLogCall { _ = try await TurnQueue.enqueue(inbox.queue, session: session, name: inbox.turnQueue) }
    }

    @Sendable func stream(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        return try await eventStream(SessionID(row.id), workspace: context.workspace, request: request)
    }

    /// A `user.custom_tool_result` or `user.tool_confirmation` must answer a tool use that is
    /// waiting for it. Appending one that does not would put a tool result with no tool use into
    /// the model's context, and every later turn of the session would fail on it.
    func checkToolAnswers(_ events: [NewEvent], session: SessionID, environment: EnvironmentConfig) async throws {
        let answers = events.enumerated().compactMap { index, event -> (index: Int, isResult: Bool, id: String)? in
            switch event.payload {
            case .userCustomToolResult(let result): (index, true, result.customToolUseId)
            case .userToolConfirmation(let confirmation): (index, false, confirmation.toolUseId)
            default: nil
            }
        }
        let remoteResults = events.enumerated().compactMap { index, event -> (index: Int, id: String)? in
            if case .userToolResult(let result) = event.payload { return (index, result.toolUseId) }
            return nil
        }
        guard !answers.isEmpty || !remoteResults.isEmpty else { return }
        // An answer can only answer a tool use at or before it, and an event's id carries its
        // sequence number: the log is read from the earliest use named, not from its start. An
        // id that is not one of this session's names no event, and its answer is refused below.
        let named = (answers.map(\.id) + remoteResults.map(\.id)).compactMap { SessionLog.seq(ofEventID: $0, in: session) }
        let events = try await sessionLogCall {
            var tail: [StoredEvent] = []
            if let earliest = named.min() { try await log.replay(session, afterSeq: earliest - 1) { tail.append($0) } }
            return tail
        }
        if !remoteResults.isEmpty {
            try Self.checkRemoteResults(remoteResults, events: events, session: session, environment: environment)
        }
        var waitingForResult = Set(ContextBuilder.pendingCustomToolUses(in: events).map(\.id))
        var waitingForConfirmation = Set(ContextBuilder.awaitingConfirmation(in: events).map(\.id))
        let known = Dictionary(events.map { ($0.id, $0.type) }, uniquingKeysWith: { first, _ in first })
        for answer in answers {
            let isResult = answer.isResult
            let field = "events[\(answer.index)].\(isResult ? "custom_tool_use_id" : "tool_use_id")"
            if isResult ? waitingForResult.remove(answer.id) != nil : waitingForConfirmation.remove(answer.id) != nil { continue }
            let what = isResult ? "an agent.custom_tool_use" : "a tool use held for confirmation (evaluated_permission \"ask\")"
            let why: String =
                switch known[answer.id] {
                case nil: "session \(session.rawValue) has no event \(answer.id)"
                case let type? where isResult ? type == SessionEventType.agentCustomToolUse.rawValue : Self.confirmable.contains(type):
                    "\(answer.id) was already answered"
                case let type?: "\(answer.id) is the session's \(type) event, not \(what)"
                }
            throw APIError.unprocessable(
                field, why, fix: "answer only the ids in the session's stop_reason.event_ids while it is idle with requires_action")
        }
    }

    /// A `user.tool_result` answers a call that a self-hosted worker runs now: open, not held
    /// for a confirmation, and answered once (the log refuses a second result even when two
    /// race past this check).
    static func checkRemoteResults(
        _ results: [(index: Int, id: String)], events: [StoredEvent], session: SessionID, environment: EnvironmentConfig
    ) throws {
        guard let running = TurnRunner.remoteCallsRunning(events, environment) else {
            throw APIError.invalid(
                "events[\(results[0].index)].type",
                "user.tool_result answers the agent toolset calls of a self_hosted environment's worker, and session \(session.rawValue) runs in a cloud environment",
                fix: "answer agent.custom_tool_use events with user.custom_tool_result")
        }
        var open = Set(running.map(\.id))
        let known = Dictionary(events.map { ($0.id, $0.type) }, uniquingKeysWith: { first, _ in first })
        for result in results where open.remove(result.id) == nil {
            let why: String =
                switch known[result.id] {
                case nil: "session \(session.rawValue) has no event \(result.id)"
                case SessionEventType.agentToolUse.rawValue?: "\(result.id) was already answered, or waits for a user.tool_confirmation"
                case let type?: "\(result.id) is the session's \(type) event, not an agent.tool_use its worker runs"
                }
            throw APIError.unprocessable(
                "events[\(result.index)].tool_use_id", why, fix: "answer each agent.tool_use of the session once, after any confirmation it needs")
        }
    }

    /// The types of tool use a `user.tool_confirmation` answers.
    private static let confirmable: Set<String> = [SessionEventType.agentToolUse.rawValue, SessionEventType.agentMcpToolUse.rawValue]

    /// One page of a session's events. Sequence numbers are the cursor: `page` is `after_N`
    /// (ascending) or `before_N` (descending).
    func events(_ session: SessionID, _ query: EventQuery) async throws -> ([StoredEvent], String?) {
        let lastSeq = try await sessionLogCall { try await log.lastSeq(session) }
        var matched: [StoredEvent] = []
        let chunk = 500
        if query.ascending {
            var after = query.cursor ?? 0
            while matched.count <= query.limit, after < lastSeq {
                let batch = try await sessionLogCall { try await log.read(session, afterSeq: after, limit: chunk) }
                if batch.isEmpty { break }
                for event in batch where query.matches(event) {
                    matched.append(event)
                    if matched.count > query.limit { break }
                }
                after = batch.last!.seq
            }
        } else {
            var before = min(query.cursor ?? (lastSeq + 1), lastSeq + 1)
            while matched.count <= query.limit, before > 1 {
                let from = max(0, before - 1 - Int64(chunk))
                let batch = try await sessionLogCall { try await log.read(session, afterSeq: from, limit: Int(before - 1 - from)) }
                if batch.isEmpty { break }
                for event in batch.reversed() where query.matches(event) {
                    matched.append(event)
                    if matched.count > query.limit { break }
                }
                before = from + 1
            }
        }
        let page = Array(matched.prefix(query.limit))
        guard matched.count > query.limit, let last = page.last else { return (page, nil) }
        return (page, query.ascending ? "after_\(last.seq)" : "before_\(last.seq)")
    }
}

/// The filters and cursor of an event list.
struct EventQuery {
    let limit: Int
    let ascending: Bool
    let cursor: Int64?
    let types: Set<String>
    let created: CreatedAtRange

    init(_ input: RequestInput) throws {
        limit = try input.int("limit", default: 20, range: 1...1000)
        ascending = try input.ascending(default: true)
        if let page = input.string("page"), !page.isEmpty {
            let parts = page.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, let seq = Int64(parts[1]), seq >= 0,
                (parts[0] == "after" && ascending) || (parts[0] == "before" && !ascending)
            else {
                throw APIError.invalid(
                    "page", "'\(page.prefix(40))' is not a cursor for order=\(ascending ? "asc" : "desc")",
                    fix: "pass the next_page value of a previous response with the same order")
            }
            cursor = seq
        } else {
            cursor = nil
        }
        types = Set(input.query["types"] ?? [])
        for type in types where SessionEventType(rawValue: type) == nil {
            throw APIError.invalid("types", "'\(type)' is not an event type")
        }
        created = try input.createdAtRange()
    }

    func matches(_ event: StoredEvent) -> Bool {
        if !types.isEmpty, !types.contains(event.type) { return false }
        if created != CreatedAtRange() {
            guard let at = CreatedAtRange.instant(event.processedAt) else { return false }
            return created.contains(at)
        }
        return true
    }
}
