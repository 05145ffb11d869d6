import DroverCore
import Foundation
import GRDB

enum EgressTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("egress: requests by session, host and verdict") { db in
            try db.execute(
                sql: """
                    CREATE TABLE egress_usage (
                        session_id TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL, verdict TEXT NOT NULL,
                        requests INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
                        first_at TEXT NOT NULL, last_at TEXT NOT NULL,
                        PRIMARY KEY (session_id, host, port, verdict));
                    """)
        }
    }
}

/// What each session's sandbox asked of the egress proxy: requests and bytes by destination and
/// verdict (`allowed`, or why it was refused). Written by the worker after each tool call.
extension MirrorDatabase {
    public struct EgressUsageRow: Sendable, Equatable, Codable {
        public let host: String
        public let port: Int
        public let verdict: String
        public var requests: Int
        public var bytesSent: Int
        public var bytesReceived: Int

        public init(host: String, port: Int, verdict: String, requests: Int, bytesSent: Int, bytesReceived: Int) {
            self.host = host
            self.port = port
            self.verdict = verdict
            self.requests = requests
            self.bytesSent = bytesSent
            self.bytesReceived = bytesReceived
        }

        enum CodingKeys: String, CodingKey {
            case host, port, verdict, requests
            case bytesSent = "bytes_sent", bytesReceived = "bytes_received"
        }
    }

    /// Adds `rows` to the session's counts.
    public func recordEgress(session: String, _ rows: [EgressUsageRow], at now: String = ISO8601DateFormatter().string(from: Date())) async throws {
        guard !rows.isEmpty else { return }
        try await pool.write { db in
            for row in rows {
                try db.execute(
                    sql: """
                        INSERT INTO egress_usage (session_id, host, port, verdict, requests, bytes_sent, bytes_received, first_at, last_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (session_id, host, port, verdict) DO UPDATE SET
                            requests = requests + excluded.requests, bytes_sent = bytes_sent + excluded.bytes_sent,
                            bytes_received = bytes_received + excluded.bytes_received, last_at = excluded.last_at
                        """,
                    arguments: [session, row.host, row.port, row.verdict, row.requests, row.bytesSent, row.bytesReceived, now, now])
            }
        }
    }

    /// The session's counts, by host, port and verdict.
    public func egressUsage(session: String) async throws -> [EgressUsageRow] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM egress_usage WHERE session_id = ? ORDER BY host, port, verdict", arguments: [session]
            ).map {
                EgressUsageRow(
                    host: $0["host"], port: $0["port"], verdict: $0["verdict"], requests: $0["requests"], bytesSent: $0["bytes_sent"],
                    bytesReceived: $0["bytes_received"])
            }
        }
    }
}
