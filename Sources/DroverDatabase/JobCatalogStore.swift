import Foundation
import GRDB

/// The job catalog: the job files `drover apply Jobs/` last saw.
enum JobCatalogTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("jobs: the job catalog", merging: ["v3: job catalog"]) { db, applied in
            guard !applied.contains("v3: job catalog") else { return }
            try db.execute(
                sql: """
                    CREATE TABLE jobs (
                        name TEXT PRIMARY KEY, file TEXT NOT NULL, content_hash TEXT NOT NULL,
                        resource TEXT NOT NULL, updated_at TEXT NOT NULL, removed_at TEXT);
                    """)
        }
    }
}

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
            try JobRow.fetchAll(db, sql: "SELECT * FROM jobs ORDER BY name")
        }
    }

    /// Writes the catalog in one transaction: `upserts` are present, `removals` are marked removed.
    public func applyJobs(upserts: [JobRow], removals: [String]) async throws {
        try await pool.write { db in
            for row in upserts {
                try db.execute(
                    sql: """
                        INSERT INTO jobs (name, file, content_hash, resource, updated_at, removed_at)
                        VALUES (?, ?, ?, ?, \(Self.now), NULL)
                        ON CONFLICT(name) DO UPDATE SET file = excluded.file, content_hash = excluded.content_hash,
                          resource = excluded.resource, updated_at = excluded.updated_at, removed_at = NULL
                        """, arguments: [row.name, row.file, row.contentHash, row.resource])
            }
            for name in removals {
                try db.execute(
                    sql: "UPDATE jobs SET removed_at = \(Self.now), updated_at = \(Self.now) WHERE name = ? AND removed_at IS NULL", arguments: [name]
                )
            }
        }
    }
}

extension MirrorDatabase.JobRow: FetchableRecord {
    public init(row: Row) throws {
        self.init(name: row["name"], file: row["file"], contentHash: row["content_hash"], resource: row["resource"], removedAt: row["removed_at"])
    }

    public init(name: String, file: String, contentHash: String, resource: String) {
        self.init(name: name, file: file, contentHash: contentHash, resource: resource, removedAt: nil)
    }
}
