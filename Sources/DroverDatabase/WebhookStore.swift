import Crypto
import DroverCore
import Foundation
import GRDB

enum WebhookTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("webhooks: endpoints") { db in
            try db.execute(
                sql: """
                    CREATE TABLE webhook_endpoints (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL,
                        secret TEXT NOT NULL, created_at TEXT NOT NULL, removed_at TEXT);
                    CREATE INDEX webhook_endpoints_by_workspace ON webhook_endpoints(workspace_id) WHERE removed_at IS NULL;
                    """)
        }
    }
}

/// Where each workspace wants to be told of events, and the secret its deliveries are signed
/// with. The secret is kept here, beside the rest of the control plane, because every delivery
/// needs it; the file is the host's, which no sandbox reaches.
extension MirrorDatabase {
    public struct WebhookEndpoint: Sendable, Equatable {
        public let id: String
        public let workspace: String
        public let url: String
        /// Event types (`session.status_idled`), or `*` for all.
        public let events: [String]
        /// `whsec_` and the base64 of the signing key, as Standard Webhooks writes it.
        public let secret: String
        public let createdAt: String

        public func wants(_ type: String) -> Bool { events.contains("*") || events.contains(type) }
    }

    /// Adds an endpoint with a new secret, which is returned here and never shown again.
    public func addWebhookEndpoint(workspace: String, url: String, events: [String]) async throws -> WebhookEndpoint {
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let endpoint = WebhookEndpoint(
            id: Identifier.make(prefix: "whep"), workspace: workspace, url: url, events: events,
            secret: "whsec_" + key.base64EncodedString(), createdAt: ControlPlaneStore.timestamp())
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO webhook_endpoints (id, workspace_id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [
                    endpoint.id, workspace, url, JSONValue.array(events.map(JSONValue.string)).compactJSON, endpoint.secret, endpoint.createdAt,
                ])
        }
        return endpoint
    }

    /// Live endpoints: of one workspace, or of all.
    public func webhookEndpoints(workspace: String? = nil) async throws -> [WebhookEndpoint] {
        // Prepared once per connection: the recorder asks after every batch it commits.
        try await pool.read { db in
            let rows =
                if let workspace {
                    try Row.fetchAll(
                        db.cachedStatement(sql: "SELECT * FROM webhook_endpoints WHERE removed_at IS NULL AND workspace_id = ? ORDER BY created_at"),
                        arguments: [workspace])
                } else {
                    try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM webhook_endpoints WHERE removed_at IS NULL ORDER BY created_at"))
                }
            return rows.map(WebhookEndpoint.init)
        }
    }

    /// A live endpoint by id; nil once removed, so its waiting deliveries are dropped.
    public func webhookEndpoint(id: String) async throws -> WebhookEndpoint? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM webhook_endpoints WHERE id = ? AND removed_at IS NULL", arguments: [id])
                .map(WebhookEndpoint.init)
        }
    }

    @discardableResult
    public func removeWebhookEndpoint(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE webhook_endpoints SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                arguments: [ControlPlaneStore.timestamp(), id])
            return db.changesCount > 0
        }
    }

    /// The workspace a session belongs to: the API's row for it, or who started it.
    public func sessionWorkspace(_ session: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT workspace_id FROM api_sessions WHERE id = ?", arguments: [session])
                ?? String.fetchOne(db, sql: "SELECT workspace_id FROM session_origins WHERE session_id = ?", arguments: [session])
        }
    }
}

extension MirrorDatabase.WebhookEndpoint {
    init(row: Row) {
        let events = (try? JSONValue.parse(row["events"] as String))?.arrayValue?.compactMap(\.stringValue) ?? []
        self.init(
            id: row["id"], workspace: row["workspace_id"], url: row["url"], events: events, secret: row["secret"], createdAt: row["created_at"])
    }
}
