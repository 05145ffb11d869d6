import DroverCore
import DroverTesting
import Foundation
import GRDB
import Synchronization
import Testing

@testable import DroverDatabase

/// Drover 0.1's numbered migrations, kept here as a fixture.
enum NumberedSchema {
    /// The migrations exactly as Drover 0.1 registered them: the databases users have.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: sessions and events") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sessions (
                        id TEXT PRIMARY KEY,
                        workspace_id TEXT,
                        status TEXT NOT NULL DEFAULT 'idle',
                        last_seq INTEGER NOT NULL DEFAULT 0,
                        max_epoch INTEGER NOT NULL DEFAULT 0,
                        created_at TEXT,
                        last_event_at TEXT,
                        recorded_at REAL,
                        trimmed_through INTEGER NOT NULL DEFAULT 0,
                        resource TEXT
                    );
                    CREATE INDEX sessions_by_workspace ON sessions(workspace_id, created_at);
                    CREATE TABLE events (
                        session_id TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        id TEXT NOT NULL,
                        type TEXT NOT NULL,
                        processed_at TEXT NOT NULL,
                        epoch INTEGER NOT NULL DEFAULT 0,
                        payload TEXT NOT NULL,
                        PRIMARY KEY (session_id, seq)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX events_by_id ON events(id);
                    CREATE INDEX events_by_type ON events(session_id, type, seq);
                    CREATE INDEX events_by_time ON events(session_id, processed_at);
                    """)
        }
        // The control plane: later work (API, jobs, schedules) fills these; each row keeps its
        // resource as JSON beside the columns it is looked up by.
        migrator.registerMigration("v1: control plane") { db in
            try db.execute(
                sql: """
                    CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
                    CREATE TABLE api_keys (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id),
                        key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
                    CREATE TABLE agents (
                        id TEXT NOT NULL, version INTEGER NOT NULL, workspace_id TEXT NOT NULL,
                        archived_at TEXT, created_at TEXT NOT NULL, resource TEXT NOT NULL,
                        PRIMARY KEY (id, version));
                    CREATE TABLE environments (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                        created_at TEXT NOT NULL, resource TEXT NOT NULL);
                    CREATE TABLE batches (
                        id TEXT PRIMARY KEY, workspace_id TEXT, job_file TEXT NOT NULL, status TEXT NOT NULL,
                        created_at TEXT NOT NULL, resource TEXT NOT NULL);
                    CREATE TABLE batch_items (
                        batch_id TEXT NOT NULL REFERENCES batches(id), item_key TEXT NOT NULL,
                        session_id TEXT, status TEXT NOT NULL, result TEXT,
                        PRIMARY KEY (batch_id, item_key));
                    CREATE TABLE deployments (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, status TEXT NOT NULL,
                        created_at TEXT NOT NULL, resource TEXT NOT NULL);
                    """)
        }
        // Batches: one row per job, one per item key. `session_origins` says which batch or
        // deployment started a session, for metering.
        migrator.registerMigration("v2: batch items and session origins") { db in
            try db.execute(
                sql: """
                    ALTER TABLE batches ADD COLUMN name TEXT;
                    ALTER TABLE batches ADD COLUMN updated_at TEXT;
                    ALTER TABLE batch_items ADD COLUMN item_id TEXT;
                    ALTER TABLE batch_items ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE batch_items ADD COLUMN updated_at TEXT;
                    CREATE INDEX batch_items_by_session ON batch_items(session_id);
                    CREATE TABLE session_origins (
                        session_id TEXT PRIMARY KEY, kind TEXT NOT NULL, origin_id TEXT NOT NULL,
                        workspace_id TEXT, created_at TEXT NOT NULL);
                    CREATE INDEX session_origins_by_origin ON session_origins(kind, origin_id);
                    """)
        }
        migrator.registerMigration("v3: job catalog") { db in
            try db.execute(
                sql: """
                    CREATE TABLE jobs (
                        name TEXT PRIMARY KEY, file TEXT NOT NULL, content_hash TEXT NOT NULL,
                        resource TEXT NOT NULL, updated_at TEXT NOT NULL, removed_at TEXT);
                    """)
        }
        migrator.registerMigration("v2: deployments by name, and deployment runs") { db in
            try db.execute(
                sql: """
                    ALTER TABLE deployments ADD COLUMN name TEXT;
                    ALTER TABLE deployments ADD COLUMN updated_at TEXT;
                    ALTER TABLE deployments ADD COLUMN archived_at TEXT;
                    ALTER TABLE deployments ADD COLUMN last_run_at TEXT;
                    ALTER TABLE deployments ADD COLUMN fire_after REAL NOT NULL DEFAULT 0;
                    ALTER TABLE deployments ADD COLUMN spec_hash TEXT;
                    ALTER TABLE deployments ADD COLUMN spec TEXT;
                    CREATE UNIQUE INDEX deployments_by_name ON deployments(workspace_id, name) WHERE archived_at IS NULL;
                    CREATE TABLE deployment_runs (
                        id TEXT PRIMARY KEY,
                        deployment_id TEXT NOT NULL REFERENCES deployments(id),
                        workspace_id TEXT NOT NULL,
                        scheduled_at TEXT,
                        session_id TEXT,
                        created_at TEXT NOT NULL,
                        resource TEXT NOT NULL);
                    -- At most one run per (deployment, scheduled occurrence), as the SDK promises.
                    CREATE UNIQUE INDEX deployment_runs_by_occurrence ON deployment_runs(deployment_id, scheduled_at);
                    CREATE INDEX deployment_runs_by_time ON deployment_runs(deployment_id, created_at);
                    """)
        }
        // The HTTP API's session resources (agent snapshot, environment, metadata, archive state).
        migrator.registerMigration("v2: api sessions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE api_sessions (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                        created_at TEXT NOT NULL, resource TEXT NOT NULL);
                    CREATE INDEX api_sessions_by_workspace ON api_sessions(workspace_id, created_at);
                    """)
        }
        // Files API metadata; the bytes live under `<data>/files/<workspace>/<file id>`.
        migrator.registerMigration("v4: files") { db in
            try db.execute(
                sql: """
                    CREATE TABLE files (
                        id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, archived_at TEXT,
                        created_at TEXT NOT NULL, resource TEXT NOT NULL);
                    CREATE INDEX files_by_workspace ON files(workspace_id, created_at);
                    """)
        }
        // The environment config beside the agent snapshot, so a session restored from SQLite
        // alone still gets its packages and networking.
        migrator.registerMigration("v5: session environments") { db in
            try db.execute(sql: "ALTER TABLE sessions ADD COLUMN environment TEXT")
        }
        // Why a deployment was paused, when a failed scheduled run paused it.
        migrator.registerMigration("v6: deployment paused reasons") { db in
            try db.execute(sql: "ALTER TABLE deployments ADD COLUMN paused_reason TEXT")
        }
        return migrator
    }
}

/// What a schema is, compared by meaning rather than by text: each table's columns (name, type,
/// not null, default, primary key position), foreign keys and rowid choice, and each index.
struct SchemaShape: Equatable, CustomStringConvertible {
    var tables: [String: [String]] = [:]
    var indexes: [String: String] = [:]

    init(_ db: Database) throws {
        for table in try String.fetchAll(
            db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'grdb_migrations'")
        {
            var facts = try Row.fetchAll(db, sql: "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)", arguments: [table])
                .map {
                    "column \($0["name"] as String) \($0["type"] as String) notnull=\($0["notnull"] as Int) default=\(($0["dflt_value"] as String?) ?? "-") pk=\($0["pk"] as Int)"
                }
            facts += try Row.fetchAll(db, sql: "SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?)", arguments: [table])
                .map { "references \($0["table"] as String)(\(($0["to"] as String?) ?? "-")) from \($0["from"] as String)" }
            let sql = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = ?", arguments: [table]) ?? ""
            facts.append(sql.contains("WITHOUT ROWID") ? "without rowid" : "rowid")
            tables[table] = facts.sorted()
        }
        for row in try Row.fetchAll(db, sql: "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL") {
            let sql = (row["sql"] as String).split(whereSeparator: \.isWhitespace).joined(separator: " ")
            indexes[row["name"]] = sql
        }
    }

    var description: String {
        tables.keys.sorted().map { "\($0): \(tables[$0]!)" }.joined(separator: "\n") + "\n"
            + indexes.keys.sorted().map { "\($0): \(indexes[$0]!)" }.joined(separator: "\n")
    }
}

@Suite("Database schema")
struct SchemaTests {
    func scratch(_ label: String) throws -> String {
        let directory = scratchDirectory("schema")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("\(label).db").path
    }

    func shape(_ path: String) throws -> (SchemaShape, [String]) {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            (try SchemaShape(db), try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier"))
        }
    }

    /// `drover api` and `drover worker` started together on a new data directory: both migrated
    /// the new file at once, and one failed with "table ... already exists".
    @Test("openers of a new database file at once all open it: the migrations run once, one opener at a time")
    func concurrentOpeners() throws {
        for round in 0..<4 {
            let path = try scratch("race-\(round)")
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do {
                    _ = try MirrorDatabase(path: path)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "round \(round): \(failures.withLock { $0 })")
            #expect(try shape(path).1.count == DatabaseSchema.migrator.migrations.count)
        }
    }

    @Test("migrations are named for what they make, and every feature registers its own")
    func names() {
        let identifiers = DatabaseSchema.migrator.migrations
        #expect(
            identifiers == [
                "sessions: events and session rows",
                "control plane: workspaces, keys and the API's resources",
                "batches: runs, items and session origins",
                "jobs: the job catalog",
                "deployments: schedules and their runs",
                "egress: requests by session, host and verdict",
                "vaults: vaults and sealed credentials",
                "sessions: sealed repository tokens",
                "webhooks: endpoints",
                "environments: worker keys",
            ])
        #expect(NumberedSchema.migrator.migrations == DatabaseSchema.numberedIdentifiers)
    }

    /// Every state a Drover 0.1 database can be in (none, some or all of its numbered migrations
    /// applied) opens to the schema a new database gets, with the new names recorded.
    @Test("a database from the numbered migrations, at any step, upgrades to the same schema as a new one", arguments: 0...9)
    func upgrade(applied: Int) async throws {
        let fresh = try scratch("fresh")
        _ = try MirrorDatabase(path: fresh)
        let (expected, expectedNames) = try shape(fresh)
        #expect(expectedNames.count == 10)

        let old = try scratch("numbered-\(applied)")
        let queue = try DatabaseQueue(path: old)
        if applied > 0 {
            try NumberedSchema.migrator.migrate(queue, upTo: DatabaseSchema.numberedIdentifiers[applied - 1])
        }
        try await queue.write { db in
            if applied >= 1 {
                try db.execute(
                    sql:
                        "INSERT INTO events (session_id, seq, id, type, processed_at, payload) VALUES ('sesn_old', 1, 'sevt_1', 'user.message', '2026-01-01T00:00:00Z', '{}')"
                )
            }
        }
        try queue.close()

        let upgraded = try MirrorDatabase(path: old)
        let (actual, names) = try shape(old)
        #expect(actual == expected, "upgraded:\n\(actual)\n\nnew:\n\(expected)")
        #expect(names == expectedNames)
        if applied >= 1 {
            #expect(try await upgraded.events(session: "sesn_old", afterSeq: 0, limit: 10).map(\.type) == ["user.message"])
        }
        // Opening again runs nothing: the upgrade is recorded.
        _ = try MirrorDatabase(path: old)
        #expect(try shape(old).1 == expectedNames)
    }
}
