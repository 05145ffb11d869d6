import DroverCore
import Foundation
import GRDB

/// The event mirror: every event of every session, and one row per session with its status,
/// its last seq and how far Redis has been trimmed.
enum SessionMirrorTables: TableGroup {
    static func registerMigrations(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("sessions: events and session rows", merging: ["v1: sessions and events", "v5: session environments"]) {
            db, applied in
            if !applied.contains("v1: sessions and events") {
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
            // The environment config beside the agent snapshot, so a session restored from
            // SQLite alone still gets its packages and networking.
            if !applied.contains("v5: session environments") {
                try db.execute(sql: "ALTER TABLE sessions ADD COLUMN environment TEXT")
            }
        }
    }
}

/// What SQLite refused, with its message.
public struct DatabaseError: ActionableError, Equatable {
    public let message: String
    public var field: String? { nil }
    public var fix: String? { nil }

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { "SQLite: \(message)" }
}

/// The SQLite side of the log: every event, mirrored by the recorder, plus the control-plane
/// tables. WAL mode, so readers never block the recorder.
public final class MirrorDatabase: Sendable {
    public let path: String
    let pool: DatabasePool

    public init(path: String) throws(DatabaseError) {
        self.path = path
        do {
            try FileManager.default.createDirectory(
                at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            pool = try Self.alone(path: path) {
                let pool = try DatabasePool(path: path, configuration: configuration)
                try DatabaseSchema.migrator.migrate(pool)
                return pool
            }
        } catch {
            throw DatabaseError("cannot open \(path): \(error)")
        }
    }

    /// Opens and migrates under an exclusive lock on `<path>.migrating`. Two processes opening a
    /// new file at once (`drover api` and `drover worker` started together) raced: both switched
    /// it to WAL ("database is locked"), and the migrator reads which migrations ran and then runs
    /// the others, so both ran the first ("table already exists"). The lock is the kernel's, so
    /// a process that dies holding it frees it.
    static func alone<T>(path: String, _ body: () throws -> T) throws -> T {
        let lock = open(path + ".migrating", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw DatabaseError("cannot open \(path).migrating: \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw DatabaseError("cannot lock \(path).migrating: \(String(cString: strerror(errno)))") }
        }
        defer { flock(lock, LOCK_UN) }
        return try body()
    }

    /// One event as the recorder received it from a mirror stream.
    public struct MirroredEvent: Sendable {
        public let session: String
        public let seq: Int64
        public let type: String
        public let epoch: Int64
        public let json: String
        public let processedAt: String
        public let id: String

        public init(session: String, seq: Int64, type: String, epoch: Int64, json: String, processedAt: String, id: String) {
            self.session = session
            self.seq = seq
            self.type = type
            self.epoch = epoch
            self.json = json
            self.processedAt = processedAt
            self.id = id
        }
    }

    /// Writes a batch in one transaction. Idempotent on (session_id, seq): a batch replayed after
    /// a crash adds nothing twice. Returns how many rows were new.
    @discardableResult
    public func record(_ batch: [MirroredEvent]) async throws -> Int {
        guard !batch.isEmpty else { return 0 }
        let now = Date().timeIntervalSince1970
        return try await pool.write { db in
            var inserted = 0
            let insert = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO events (session_id, seq, id, type, processed_at, epoch, payload)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """)
            for event in batch {
                try insert.execute(arguments: [event.session, event.seq, event.id, event.type, event.processedAt, event.epoch, event.json])
                inserted += db.changesCount
            }
            var latest: [String: MirroredEvent] = [:]
            var statuses: [String: String] = [:]
            for event in batch {
                if let seen = latest[event.session], seen.seq >= event.seq { continue }
                latest[event.session] = event
            }
            for event in batch.sorted(by: { $0.seq < $1.seq }) {
                if let status = SessionEventType(rawValue: event.type)?.sessionStatus { statuses[event.session] = status }
            }
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO sessions (id, status, last_seq, max_epoch, created_at, last_event_at, recorded_at)
                    VALUES (?, COALESCE(?, 'idle'), ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET
                        status = CASE WHEN excluded.last_seq >= sessions.last_seq THEN COALESCE(?, sessions.status) ELSE sessions.status END,
                        last_seq = MAX(sessions.last_seq, excluded.last_seq),
                        max_epoch = MAX(sessions.max_epoch, excluded.max_epoch),
                        last_event_at = CASE WHEN excluded.last_seq >= sessions.last_seq THEN excluded.last_event_at ELSE sessions.last_event_at END,
                        recorded_at = excluded.recorded_at
                    """)
            for (session, event) in latest {
                let status = statuses[session]
                try upsert.execute(arguments: [session, status, event.seq, event.epoch, event.processedAt, event.processedAt, now, status])
            }
            return inserted
        }
    }

    public func events(session: String, afterSeq: Int64, limit: Int) async throws(DatabaseError) -> [StoredEvent] {
        do {
            return try await pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT seq, type, payload FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?
                        """, arguments: [session, afterSeq, limit]
                ).map { row in
                    StoredEvent(session: session, seq: row["seq"], type: row["type"], json: row["payload"])
                }
            }
        } catch {
            throw DatabaseError("\(error)")
        }
    }

    public struct SessionRow: Sendable, Codable {
        public let id: String
        public let status: String
        public let lastSeq: Int64
        public let maxEpoch: Int64
        public let createdAt: String?
        public let lastEventAt: String?
        public let trimmedThrough: Int64
        /// The agent snapshot the session was created with (JSON).
        public let resource: String?
        /// The environment `config` the session was created with (JSON).
        public let environment: String?
    }

    /// Stores the session's agent snapshot and environment config, creating the row if the
    /// recorder has not yet.
    public func saveSessionResource(_ id: String, resource: String?, environment: String?) async throws(DatabaseError) {
        do {
            try await pool.write { db in try Self.saveSessionResource(id, resource: resource, environment: environment, in: db) }
        } catch {
            throw DatabaseError("\(error)")
        }
    }

    static func saveSessionResource(_ id: String, resource: String?, environment: String?, in db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO sessions (id, resource, environment, created_at) VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                ON CONFLICT(id) DO UPDATE SET resource = COALESCE(excluded.resource, resource),
                    environment = COALESCE(excluded.environment, environment)
                """
        ).execute(arguments: [id, resource, environment])
    }

    public func session(_ id: String) async throws(DatabaseError) -> SessionRow? {
        do {
            return try await pool.read { db in
                // Every session create and wake asks: prepared once per reader connection.
                try SessionRow.fetchOne(try db.cachedStatement(sql: "SELECT * FROM sessions WHERE id = ?"), arguments: [id])
            }
        } catch {
            throw DatabaseError("\(error)")
        }
    }

    public func sessions(limit: Int) async throws(DatabaseError) -> [SessionRow] {
        try await sessions(SessionFilter(), limit: limit)
    }

    /// What `drover sessions list` narrows to; every field set must match.
    public struct SessionFilter: Sendable {
        public var status: String?
        /// The API's agent id (`agent_...`).
        public var agent: String?
        public var batch: String?
        public var deployment: String?
        public var workspace: String?
        /// Created at or after, and before: RFC 3339 instants.
        public var createdSince: String?
        public var createdUntil: String?
        public init() {}

        public var isEmpty: Bool {
            [status, agent, batch, deployment, workspace, createdSince, createdUntil].allSatisfy { $0 == nil }
        }
    }

    /// Sessions the mirror knows, most recent first, with their mirrored status.
    public func sessions(_ filter: SessionFilter, limit: Int, offset: Int = 0) async throws(DatabaseError) -> [SessionRow] {
        // A session thread's log is mirrored as a session is; it is listed with its session's threads.
        var conditions: [String] = ["s.id NOT LIKE 'sthr\\_%' ESCAPE '\\'"]
        var arguments: StatementArguments = []
        func add(_ condition: String, _ value: String?) {
            guard let value else { return }
            conditions.append(condition)
            arguments += [value]
        }
        add("s.status = ?", filter.status)
        add("CAST(json_extract(a.resource, '$.agent.id') AS TEXT) = ?", filter.agent)
        add("(o.kind = 'batch' AND o.origin_id = ?)", filter.batch)
        add("(o.kind = 'deployment' AND o.origin_id = ?)", filter.deployment)
        add("COALESCE(o.workspace_id, a.workspace_id, s.workspace_id) = ?", filter.workspace)
        add("s.created_at >= ?", filter.createdSince)
        add("s.created_at < ?", filter.createdUntil)
        let sql = """
            SELECT s.* FROM sessions s
            LEFT JOIN session_origins o ON o.session_id = s.id LEFT JOIN api_sessions a ON a.id = s.id
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY s.last_event_at DESC, s.id DESC LIMIT ? OFFSET ?
            """
        arguments += [limit, offset]
        let bound = arguments
        do {
            return try await pool.read { db in try SessionRow.fetchAll(db, sql: sql, arguments: bound) }
        } catch {
            throw DatabaseError("\(error)")
        }
    }

    /// Sessions whose last event is older than `idleSeconds`, with everything up to `last_seq`
    /// recorded, and not yet trimmed from Redis that far.
    public func trimCandidates(idleSeconds: Double, limit: Int) async throws -> [(String, Int64)] {
        let cutoff = Date().timeIntervalSince1970 - idleSeconds
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, last_seq FROM sessions
                    WHERE trimmed_through < last_seq AND recorded_at < ? AND status NOT IN ('running', 'rescheduling')
                    LIMIT ?
                    """, arguments: [cutoff, limit]
            ).map { ($0["id"], $0["last_seq"]) }
        }
    }

    public func markTrimmed(_ session: String, through seq: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE sessions SET trimmed_through = MAX(trimmed_through, ?) WHERE id = ?", arguments: [seq, session])
        }
    }

    /// The fence epoch each event was written under, in seq order.
    public func epochs(session: String) async throws -> [Int64] {
        try await pool.read { db in
            try Int64.fetchAll(db, sql: "SELECT epoch FROM events WHERE session_id = ? ORDER BY seq", arguments: [session])
        }
    }

    public func eventCount(session: String? = nil) async throws -> Int {
        try await pool.read { db in
            if let session {
                return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE session_id = ?", arguments: [session]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0
        }
    }

}

extension MirrorDatabase.SessionRow: FetchableRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], status: row["status"], lastSeq: row["last_seq"], maxEpoch: row["max_epoch"],
            createdAt: row["created_at"], lastEventAt: row["last_event_at"], trimmedThrough: row["trimmed_through"],
            resource: row["resource"], environment: row["environment"]
        )
    }
}
