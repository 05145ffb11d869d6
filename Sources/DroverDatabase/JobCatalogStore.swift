import Foundation
import GRDB

/// The job files `drover apply Jobs/` last saw: what the next apply compares against.
extension MirrorDatabase {
    public struct JobRow: Sendable, Equatable {
        public let name: String
        public let file: String
        public let contentHash: String
        public let resource: String
        public let removedAt: String?
    }

    public func jobs() async throws -> [JobRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM jobs ORDER BY name").map {
                JobRow(name: $0["name"], file: $0["file"], contentHash: $0["content_hash"], resource: $0["resource"], removedAt: $0["removed_at"])
            }
        }
    }

    /// Writes the catalog in one transaction: `upserts` are present, `removals` are marked removed.
    public func applyJobs(upserts: [JobRow], removals: [String]) async throws {
        try await pool.write { db in
            for row in upserts {
                try db.execute(sql: """
                    INSERT INTO jobs (name, file, content_hash, resource, updated_at, removed_at)
                    VALUES (?, ?, ?, ?, \(Self.now), NULL)
                    ON CONFLICT(name) DO UPDATE SET file = excluded.file, content_hash = excluded.content_hash,
                      resource = excluded.resource, updated_at = excluded.updated_at, removed_at = NULL
                    """, arguments: [row.name, row.file, row.contentHash, row.resource])
            }
            for name in removals {
                try db.execute(sql: "UPDATE jobs SET removed_at = \(Self.now), updated_at = \(Self.now) WHERE name = ? AND removed_at IS NULL", arguments: [name])
            }
        }
    }
}

extension MirrorDatabase.JobRow {
    public init(name: String, file: String, contentHash: String, resource: String) {
        self.init(name: name, file: file, contentHash: contentHash, resource: resource, removedAt: nil)
    }
}
