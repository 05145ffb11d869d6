import DroverCore
import Foundation
import GRDB

/// Metering from the mirrored log: tokens from every model request, and active time as the
/// time sessions spent in the running status (idle, rescheduling and waiting on a client do not
/// count). Computed from events, so a turn cut short by a crash still counts the time it ran.
public struct MeteredSession: Sendable, Codable, Equatable {
    public let session: String
    public let workspace: String
    /// `batch`, `deployment`, `api`, or `other` for sessions created some other way.
    public let originKind: String
    public let originId: String?
    /// The agent's model (`claude-sonnet-4-5`), which prices its tokens; nil when unknown.
    public var model: String?
    public var inputTokens: Int
    public var outputTokens: Int
    public var cacheReadInputTokens: Int
    public var cacheCreationInputTokens: Int
    public var activeSeconds: Double
    public var modelRequests: Int
    /// Events counted from Redis because no recorder had mirrored them yet.
    public var unmirroredEvents: Int

    enum CodingKeys: String, CodingKey {
        case session, workspace, model
        case originKind = "origin_kind", originId = "origin_id"
        case inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens", cacheCreationInputTokens = "cache_creation_input_tokens"
        case activeSeconds = "active_seconds", modelRequests = "model_requests"
        case unmirroredEvents = "unmirrored_events"
    }

    init(session: String, workspace: String, originKind: String, originId: String?, model: String?) {
        self.session = session
        self.workspace = workspace
        self.originKind = originKind
        self.originId = originId
        self.model = model
        (inputTokens, outputTokens, cacheReadInputTokens, cacheCreationInputTokens, modelRequests, unmirroredEvents) = (0, 0, 0, 0, 0, 0)
        activeSeconds = 0
    }
}

extension MirrorDatabase {
    /// Usage per session from the mirrored log, plus `unmirrored` events (still in Redis's mirror
    /// streams, `Recorder.unmirrored`) past what SQLite has of their session, so that the figures
    /// are right whether or not a recorder has caught up. A session SQLite has no snapshot of
    /// yet has no `model`; the caller can read it from Redis.
    public func sessionUsage(unmirrored: [StoredEvent] = []) async throws -> [MeteredSession] {
        var (usage, meter) = try await pool.read { db -> ([String: MeteredSession], UsageMeter) in
            var usage: [String: MeteredSession] = [:]
            let sessions = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.id, COALESCE(o.workspace_id, s.workspace_id, 'default') AS workspace,
                           COALESCE(o.kind, 'other') AS kind, o.origin_id, json_extract(s.resource, '$.model') AS model
                    FROM sessions s LEFT JOIN session_origins o ON o.session_id = s.id
                    UNION ALL
                    SELECT o.session_id, COALESCE(o.workspace_id, 'default'), o.kind, o.origin_id, NULL
                    FROM session_origins o WHERE o.session_id NOT IN (SELECT id FROM sessions)
                    """)
            for row in sessions {
                let id: String = row["id"]
                usage[id] = MeteredSession(
                    session: id, workspace: row["workspace"], originKind: row["kind"], originId: row["origin_id"], model: row["model"])
            }
            var meter = UsageMeter()
            let events = try Row.fetchAll(
                db,
                sql: """
                    SELECT session_id, seq, type, processed_at, payload FROM events
                    WHERE type IN ('span.model_request_end', 'session.status_running', 'session.status_idle',
                                   'session.status_rescheduled', 'session.status_terminated')
                    ORDER BY session_id, seq
                    """)
            for row in events {
                meter.add(session: row["session_id"], type: row["type"], processedAt: row["processed_at"], payload: row["payload"], to: &usage)
            }
            meter.mirroredThrough = Dictionary(
                try Row.fetchAll(db, sql: "SELECT session_id, MAX(seq) AS seq FROM events GROUP BY session_id").map {
                    ($0["session_id"] as String, $0["seq"] as Int64)
                }, uniquingKeysWith: max)
            return (usage, meter)
        }
        for event in unmirrored.sorted(by: { ($0.session, $0.seq) < ($1.session, $1.seq) })
        where event.seq > meter.mirroredThrough[event.session, default: 0] {
            if usage[event.session] == nil {
                usage[event.session] = MeteredSession(session: event.session, workspace: "default", originKind: "other", originId: nil, model: nil)
            }
            usage[event.session]?.unmirroredEvents += 1
            meter.add(session: event.session, type: event.type, processedAt: event.processedAt, payload: event.json, to: &usage)
        }
        return usage.values.sorted { $0.session < $1.session }
    }
}

/// Turns a session's events, in order, into its usage: tokens from each model request's end,
/// active time from running to the next idle, rescheduled or terminated status.
struct UsageMeter {
    static let statuses = Set(
        [SessionEventType.sessionStatusRunning, .sessionStatusIdle, .sessionStatusRescheduled, .sessionStatusTerminated].map(\.rawValue))
    var runningSince: [String: Date] = [:]
    var mirroredThrough: [String: Int64] = [:]

    mutating func add(session id: String, type: String, processedAt: String, payload: String, to usage: inout [String: MeteredSession]) {
        if type == SessionEventType.spanModelRequestEnd.rawValue {
            let modelUsage = JSONValue.decode(payload).objectValue?["model_usage"]?.objectValue ?? [:]
            usage[id]?.inputTokens += modelUsage["input_tokens"]?.intValue ?? 0
            usage[id]?.outputTokens += modelUsage["output_tokens"]?.intValue ?? 0
            usage[id]?.cacheReadInputTokens += modelUsage["cache_read_input_tokens"]?.intValue ?? 0
            usage[id]?.cacheCreationInputTokens += modelUsage["cache_creation_input_tokens"]?.intValue ?? 0
            usage[id]?.modelRequests += 1
            return
        }
        guard Self.statuses.contains(type), let at = MirrorDatabase.timestamp(processedAt) else { return }
        if type == SessionEventType.sessionStatusRunning.rawValue {
            if runningSince[id] == nil { runningSince[id] = at }
        } else if let since = runningSince.removeValue(forKey: id) {
            usage[id]?.activeSeconds += max(0, at.timeIntervalSince(since))
        }
    }
}

extension MirrorDatabase {
    /// `2026-11-25T10:38:05.486888Z`: the log writes microseconds, more than ISO8601DateFormatter reads.
    public static func timestamp(_ text: String?) -> Date? {
        guard var text else { return nil }
        if let date = UTCTimestamp.parse(text) { return date }
        var fraction = 0.0
        if let dot = text.firstIndex(of: "."), let zone = text[dot...].firstIndex(where: { $0 == "Z" || $0 == "+" || $0 == "-" }) {
            fraction = Double("0" + text[dot..<zone]) ?? 0
            text.removeSubrange(dot..<zone)
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map { $0.addingTimeInterval(fraction) }
    }
}
