import DroverBrain
import DroverCore
import DroverDatabase
import DroverSessionLog
import Foundation
import Hummingbird

/// `/v1/sessions/{id}/threads`: list, retrieve, archive, and a thread's events (list and live
/// stream). A session's primary thread is its own log; a child thread's log is its own too,
/// started by the coordinator's `create_thread` call. Everything here is read from those logs.
struct ThreadController: Sendable {
    let store: ControlPlaneStore
    let log: SessionLog
    let inbox: SessionInbox
    let events: EventController
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.get(use: list)
            .get(":thread_id", use: retrieve)
            .post(":thread_id/archive", use: archive)
            .get(":thread_id/events", use: eventList)
            .get(":thread_id/stream", use: stream)
    }

    /// One of the session's threads, found by id: the primary thread, or a child thread whose
    /// log says it belongs to this session. Anything else is a 404, as another session's is.
    struct Thread {
        let id: String
        /// The log the thread's events are in.
        let log: SessionID
        /// Nil for the primary thread.
        let origin: ThreadOrigin?
    }

    func thread(_ raw: String, of session: SessionID) async throws -> Thread {
        if raw == ThreadIDs.primary(of: session) { return Thread(id: raw, log: session, origin: nil) }
        guard ThreadIDs.isChild(raw, of: session), let id = try? SessionID(raw),
            let origin = try? await log.agentSnapshot(id)?.thread, origin.session == session
        else { throw APIError.notFound("session thread", String(raw.prefix(80))) }
        return Thread(id: raw, log: id, origin: origin)
    }

    /// The session's child threads, in the order they were started (its log's
    /// `session.thread_created` events).
    func children(of session: SessionID) async throws -> [Thread] {
        var threads: [Thread] = []
        for id in try await Self.childIDs(log, of: session) {
            if let found = try? await thread(id, of: session) { threads.append(found) }
        }
        return threads
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let input = RequestInput(request)
        let limit = try input.int("limit", default: 1000, range: 1...1000)
        let statuses = Set(input.query["statuses"] ?? [])
        for status in statuses where !SessionQuery.knownStatuses.contains(status) {
            throw APIError.invalid(
                "statuses", "'\(status.prefix(40))' is not a thread status", fix: "use \(SessionQuery.knownStatuses.joined(separator: ", "))")
        }
        var offset = 0
        if let page = input.string("page"), !page.isEmpty {
            guard page.hasPrefix("after_"), let value = Int(page.dropFirst(6)), value >= 0 else {
                throw APIError.invalid("page", "'\(page.prefix(40))' is not a cursor of this list", fix: "pass the next_page of a previous response")
            }
            offset = value
        }
        let session = try SessionID(row.id)
        let all = [Thread(id: ThreadIDs.primary(of: session), log: session, origin: nil)] + (try await children(of: session))
        var shown: [JSONValue] = []
        var next: String?
        for (index, thread) in all.enumerated().dropFirst(offset) {
            let resource = try await threadJSON(thread, session: row)
            if !statuses.isEmpty, !statuses.contains(resource.objectValue?["status"]?.stringValue ?? "") { continue }
            if shown.count == limit {
                next = "after_\(index)"
                break
            }
            shown.append(resource)
        }
        return jsonResponse(page(shown, next: next))
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let found = try await thread(context.parameters.require("thread_id"), of: SessionID(row.id))
        return jsonResponse(try await threadJSON(found, session: row))
    }

    /// Ends a child thread: it stops what it runs now and takes no more messages. A coordinator
    /// waiting for its reply is told, so it does not wait for ever.
    @Sendable func archive(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let session = try SessionID(row.id)
        let found = try await thread(context.parameters.require("thread_id"), of: session)
        guard let origin = found.origin else {
            throw APIError.invalid(
                "thread_id", "\(found.id) is the session's primary thread, which ends with its session", fix: "archive the session instead")
        }
        _ = try await sessionLogCall { try await log.endThread(found.log) }
        let owed = try await sessionLogCall {
            var events: [StoredEvent] = []
            try await log.replay(session, afterSeq: 0) {
                if $0.kind?.rawValue.hasPrefix("session.thread") == true || $0.kind?.rawValue.hasPrefix("agent.thread_message") == true {
                    events.append($0)
                }
            }
            return ThreadLedger(events).thread(found.id)
        }
        if let owed, !owed.terminated {
            var notice: [SessionEventPayload] = []
            if owed.owesReply {
                notice.append(
                    .agentThreadMessageReceived(
                        AgentThreadMessageReceived(
                            content: [.text("(the thread was archived before it replied)")], fromSessionThreadId: found.id,
                            fromAgentName: origin.agentName)))
            }
            notice.append(.sessionThreadStatusTerminated(SessionThreadStatus(sessionThreadId: found.id, agentName: origin.agentName)))
            do {
                try await inbox.send(notice, to: session, clientKey: "thread-archive:\(found.id)")
            } catch SessionLogError.sessionTerminated {
                // The session ended: nobody waits.
            }
        }
        return jsonResponse(try await threadJSON(found, session: row))
    }

    @Sendable func eventList(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let found = try await thread(context.parameters.require("thread_id"), of: SessionID(row.id))
        let query = try EventQuery(RequestInput(request))
        let (listed, next) = try await events.events(found.log, query)
        return jsonResponse(page(listed.map(\.value), next: next))
    }

    @Sendable func stream(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let found = try await thread(context.parameters.require("thread_id"), of: SessionID(row.id))
        return try await events.eventStream(found.log, workspace: context.workspace, request: request)
    }

    /// The ids of `session`'s child threads, in the order they were started.
    static func childIDs(_ log: SessionLog, of session: SessionID) async throws -> [String] {
        try await sessionLogCall { try await log.threadIDs(of: session) }.map(\.rawValue)
    }

    /// Ends every child thread of an archived session (`SessionLog.endThreads`).
    static func endChildren(_ log: SessionLog, of session: SessionID) async throws {
        try await sessionLogCall { try await log.endThreads(of: session) }
    }

    /// A log's cumulative usage: its last `session.usage` event's fields (nil before its first idle).
    static func usage(_ log: SessionLog, of thread: SessionID) async throws -> [String: JSONValue]? {
        let lastSeq = try await sessionLogCall { try await log.lastSeq(thread) }
        guard lastSeq > 0 else { return nil }
        let recent = try await sessionLogCall { try await log.read(thread, afterSeq: max(0, lastSeq - 500), limit: 500) }
        guard case .sessionUsage(let last)? = recent.last(where: { $0.kind == .sessionUsage })?.payload, let fields = last.usage.wireValue.objectValue
        else { return nil }
        return fields.filter { ["input_tokens", "output_tokens", "cache_read_input_tokens", "active_seconds", "cache_creation"].contains($0.key) }
    }

    /// The token counts of every child thread of `session`, added up: a session's usage is its
    /// primary thread's and these.
    static func childrenUsage(_ log: SessionLog, of session: SessionID) async throws -> [String: Double] {
        var total: [String: Double] = [:]
        for raw in try await childIDs(log, of: session) {
            guard let id = try? SessionID(raw), let usage = try await usage(log, of: id) else { continue }
            for key in ["input_tokens", "output_tokens", "cache_read_input_tokens"] {
                if case .number(let value)? = usage[key] { total[key, default: 0] += value }
            }
        }
        return total
    }

    /// The SDK's `BetaManagedAgentsSessionThread`, from the thread's log.
    func threadJSON(_ thread: Thread, session row: ControlPlaneStore.Row) async throws -> JSONValue {
        let meta = try await sessionLogCall { try await log.meta(thread.log) }
        let lastSeq = try await sessionLogCall { try await log.lastSeq(thread.log) }
        let status: String
        if let meta {
            status = meta.status
        } else {
            status = try await log.database?.session(thread.log.rawValue)?.status ?? "idle"
        }
        let recent = lastSeq > 0 ? try await sessionLogCall { try await log.read(thread.log, afterSeq: max(0, lastSeq - 500), limit: 500) } : []
        let agent: JSONValue
        let createdAt: String
        var archivedAt: JSONValue = .null
        if let origin = thread.origin {
            agent = origin.resource ?? .object(["type": "agent", "name": .string(origin.agentName)])
            let first = try await sessionLogCall { try await log.read(thread.log, afterSeq: 0, limit: 1) }
            createdAt = first.first?.processedAt ?? row.createdAt
            if let ended = recent.last(where: { $0.kind == .sessionStatusTerminated }) { archivedAt = .string(ended.processedAt) }
        } else {
            var shown = try await store.sessionAgent(row.json["agent"], workspace: row.workspace).objectValue ?? [:]
            // The roster is the session's to show, not its primary thread's.
            shown.removeValue(forKey: "multiagent")
            agent = .object(shown)
            createdAt = row.createdAt
        }
        let updatedAt = recent.last?.processedAt ?? createdAt
        let counted = try await Self.usage(log, of: thread.log)
        let usage: JSONValue = counted.map(JSONValue.object) ?? .null
        let active = counted?["active_seconds"] ?? .null
        let formatter = ISO8601DateFormatter.withFractions
        let start = formatter.date(from: createdAt) ?? Date()
        let end = archivedAt.stringValue.flatMap { formatter.date(from: $0) } ?? Date()
        return .object([
            "type": "session_thread", "id": .string(thread.id), "session_id": .string(row.id),
            "parent_thread_id": thread.origin.map { .string($0.parentThread) } ?? .null,
            "agent": agent, "status": .string(status), "created_at": .string(createdAt), "updated_at": .string(updatedAt),
            "archived_at": archivedAt, "workflow_run_id": .null, "usage": usage,
            "stats": .object([
                "active_seconds": active, "duration_seconds": .number((end.timeIntervalSince(start) * 1000).rounded() / 1000),
                "startup_seconds": .number(0),
            ]),
        ])
    }
}
