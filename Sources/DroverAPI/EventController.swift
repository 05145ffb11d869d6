import DroverBrain
import DroverCore
import DroverDatabase
import DroverSessionLog
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
        try await checkToolAnswers(events, session: id)
        let clientKey = request.headers[.init("idempotency-key")!]
        let result = try await sessionLogCall { try await inbox.send(events, to: id, clientKey: clientKey).appended }
        let stored = try await sessionLogCall {
            try await log.read(id, afterSeq: result.firstSeq - 1, limit: Int(result.lastSeq - result.firstSeq + 1))
        }
        return jsonResponse(.object(["data": .array(stored.map(\.value))]))
    }

    @Sendable func stream(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        return try await eventStream(SessionID(row.id), workspace: context.workspace, request: request)
    }

    /// A `user.custom_tool_result` or `user.tool_confirmation` must answer a tool use that is
    /// waiting for it. Appending one that does not would put a tool result with no tool use into
    /// the model's context, and every later turn of the session would fail on it.
    func checkToolAnswers(_ events: [NewEvent], session: SessionID) async throws {
        let answers = events.enumerated().compactMap { index, event -> (index: Int, isResult: Bool, id: String)? in
            switch event.payload {
            case .userCustomToolResult(let result): (index, true, result.customToolUseId)
            case .userToolConfirmation(let confirmation): (index, false, confirmation.toolUseId)
            default: nil
            }
        }
        guard !answers.isEmpty else { return }
        let events = try await sessionLogCall { try await log.wake(session).events }
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
    let createdAfter: (String, inclusive: Bool)?
    let createdBefore: (String, inclusive: Bool)?

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
        createdAfter = input.string("created_at[gt]").map { ($0, false) } ?? input.string("created_at[gte]").map { ($0, true) }
        createdBefore = input.string("created_at[lt]").map { ($0, false) } ?? input.string("created_at[lte]").map { ($0, true) }
        for (name, value) in [("created_at", createdAfter?.0), ("created_at", createdBefore?.0)] {
            if let value, ISO8601DateFormatter.withFractions.date(from: value) == nil, ISO8601DateFormatter().date(from: value) == nil {
                throw APIError.invalid(name, "'\(value)' is not an RFC 3339 time", fix: "use for example 2026-01-31T12:00:00Z")
            }
        }
    }

    func matches(_ event: StoredEvent) -> Bool {
        if !types.isEmpty, !types.contains(event.type) { return false }
        if createdAfter != nil || createdBefore != nil {
            guard let at = Self.date(event.processedAt) else { return false }
            if let (bound, inclusive) = createdAfter, let limit = Self.date(bound), inclusive ? at < limit : at <= limit { return false }
            if let (bound, inclusive) = createdBefore, let limit = Self.date(bound), inclusive ? at > limit : at >= limit { return false }
        }
        return true
    }

    static func date(_ text: String) -> Date? {
        ISO8601DateFormatter.withFractions.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }
}
