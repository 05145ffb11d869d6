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
    public var inputTokens: Int
    public var outputTokens: Int
    public var cacheReadInputTokens: Int
    public var activeSeconds: Double
    public var modelRequests: Int

    enum CodingKeys: String, CodingKey {
        case session, workspace
        case originKind = "origin_kind", originId = "origin_id"
        case inputTokens = "input_tokens", outputTokens = "output_tokens"
        case cacheReadInputTokens = "cache_read_input_tokens"
        case activeSeconds = "active_seconds", modelRequests = "model_requests"
    }
}

extension MirrorDatabase {
    public func sessionUsage() async throws -> [MeteredSession] {
        try await pool.read { db in
            var usage: [String: MeteredSession] = [:]
            let sessions = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.id, COALESCE(o.workspace_id, s.workspace_id, 'default') AS workspace,
                           COALESCE(o.kind, 'other') AS kind, o.origin_id
                    FROM sessions s LEFT JOIN session_origins o ON o.session_id = s.id
                    """)
            for row in sessions {
                let id: String = row["id"]
                usage[id] = MeteredSession(
                    session: id, workspace: row["workspace"], originKind: row["kind"], originId: row["origin_id"],
                    inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, activeSeconds: 0, modelRequests: 0)
            }
            let tokens = try Row.fetchAll(
                db,
                sql: """
                    SELECT session_id, COUNT(*) AS requests,
                           SUM(COALESCE(json_extract(payload, '$.model_usage.input_tokens'), 0)) AS input,
                           SUM(COALESCE(json_extract(payload, '$.model_usage.output_tokens'), 0)) AS output,
                           SUM(COALESCE(json_extract(payload, '$.model_usage.cache_read_input_tokens'), 0)) AS cache_read
                    FROM events WHERE type = 'span.model_request_end' GROUP BY session_id
                    """)
            for row in tokens {
                let id: String = row["session_id"]
                usage[id]?.inputTokens = row["input"] ?? 0
                usage[id]?.outputTokens = row["output"] ?? 0
                usage[id]?.cacheReadInputTokens = row["cache_read"] ?? 0
                usage[id]?.modelRequests = row["requests"] ?? 0
            }
            let statuses = try Row.fetchAll(
                db,
                sql: """
                    SELECT session_id, type, processed_at FROM events
                    WHERE type IN ('session.status_running', 'session.status_idle', 'session.status_rescheduled', 'session.status_terminated')
                    ORDER BY session_id, seq
                    """)
            var runningSince: [String: Date] = [:]
            for row in statuses {
                let id: String = row["session_id"]
                let type: String = row["type"]
                guard let at = Self.timestamp(row["processed_at"]) else { continue }
                if type == SessionEventType.sessionStatusRunning.rawValue {
                    if runningSince[id] == nil { runningSince[id] = at }
                } else if let since = runningSince.removeValue(forKey: id) {
                    usage[id]?.activeSeconds += max(0, at.timeIntervalSince(since))
                }
            }
            return usage.values.sorted { $0.session < $1.session }
        }
    }

    /// `2026-11-25T10:38:05.486888Z`: the log writes microseconds, more than ISO8601DateFormatter reads.
    public static func timestamp(_ text: String?) -> Date? {
        guard var text else { return nil }
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
