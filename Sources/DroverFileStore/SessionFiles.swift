import DroverCore
import DroverRedis
import Foundation

/// A session's files in the file store, by role, each a small manifest under the session's own
/// hash tag (`drover:{sf:SESSION}:…`) pointing at blobs:
///
/// - `seed`: what the workspace starts with (file resources, a job item's files). Every worker
///   that builds the session's workspace fresh writes these in, on whichever host it runs.
/// - `incoming`: files added to a live session, put in place at its next tool call, then
///   forgotten.
/// - `exports`: the paths a job wants back (its output file, `collect`), and what the worker
///   that ended the session's last turn found there.
///
/// Manifests are kept as long as blobs are (`FileStoreLimits.retentionSeconds`), and removed
/// with the session.
public struct SessionFiles: Sendable {
    public let store: FileStore

    public init(store: FileStore) {
        self.store = store
    }

    public var redis: RedisClient { store.redis }
    var ttl: String { String(store.limits.retentionSeconds) }

    static func key(_ session: SessionID, _ role: String) -> String { "drover:{sf:\(session.rawValue)}:\(role)" }

    // MARK: Seed

    public func setSeed(_ session: SessionID, _ files: [StoredFile]) async throws {
        guard !files.isEmpty else { return }
        _ = try await redis.send(["SET", Self.key(session, "seed"), try Self.encode(files), "EX", ttl], idempotent: true).throwingErrorReply()
    }

    public func seed(_ session: SessionID) async throws -> [StoredFile] {
        let reply = try await redis.send(["GETEX", Self.key(session, "seed"), "EX", ttl], idempotent: true).throwingErrorReply()
        guard let text = reply.string else { return [] }
        return try Self.decode([StoredFile].self, text, what: "seed")
    }

    // MARK: Incoming

    /// A file added to a live session, waiting for its next tool call.
    public struct Incoming: Codable, Sendable, Equatable {
        public let resourceID: String
        public let file: StoredFile
        /// When it was added (ns since 1970): files are put in place in the order they came.
        public let addedAt: Int64
    }

    public func addIncoming(_ session: SessionID, resourceID: String, file: StoredFile) async throws {
        let entry = Incoming(resourceID: resourceID, file: file, addedAt: Int64(Date().timeIntervalSince1970 * 1e9))
        let key = Self.key(session, "incoming")
        _ = try await redis.pipeline([["HSET", key, resourceID, try Self.encode(entry)], ["EXPIRE", key, ttl]], idempotent: true)
            .map { try $0.throwingErrorReply() }
    }

    /// Forgets a file not put in place yet. Returns whether one was waiting.
    @discardableResult
    public func discardIncoming(_ session: SessionID, resourceID: String) async throws -> Bool {
        try await redis.send(["HDEL", Self.key(session, "incoming"), resourceID]).throwingErrorReply().int == 1
    }

    /// The files waiting, oldest first.
    public func incoming(_ session: SessionID) async throws -> [Incoming] {
        let fields = try await redis.send(["HGETALL", Self.key(session, "incoming")], idempotent: true).throwingErrorReply().hashFields
        return try fields.values.map { try Self.decode(Incoming.self, $0, what: "incoming") }.sorted {
            ($0.addedAt, $0.resourceID) < ($1.addedAt, $1.resourceID)
        }
    }

    // MARK: Exports

    /// What a turn's end found at one wanted path.
    public struct Export: Codable, Sendable, Equatable {
        public let path: String
        /// The files found (one for a file, every regular file for a directory), at their paths
        /// under /workspace; empty when nothing was there.
        public let files: [StoredFile]
        /// Why the path was not sent back (a link in the way, too large), if it was not.
        public let refused: String?

        public init(path: String, files: [StoredFile], refused: String? = nil) {
            self.path = path
            self.files = files
            self.refused = refused
        }
    }

    public func setWanted(_ session: SessionID, paths: [String]) async throws {
        guard !paths.isEmpty else { return }
        _ = try await redis.send(["SET", Self.key(session, "wanted"), try Self.encode(paths), "EX", ttl], idempotent: true).throwingErrorReply()
    }

    /// The paths the session's turns send back when they end; empty for most sessions.
    public func wanted(_ session: SessionID) async throws -> [String] {
        let reply = try await redis.send(["GET", Self.key(session, "wanted")], idempotent: true).throwingErrorReply()
        guard let text = reply.string else { return [] }
        return try Self.decode([String].self, text, what: "wanted")
    }

    public func setExports(_ session: SessionID, _ exports: [Export]) async throws {
        _ = try await redis.send(["SET", Self.key(session, "exports"), try Self.encode(exports), "EX", ttl], idempotent: true).throwingErrorReply()
    }

    /// What the last turn to end sent back; nil when no turn has.
    public func exports(_ session: SessionID) async throws -> [Export]? {
        let reply = try await redis.send(["GET", Self.key(session, "exports")], idempotent: true).throwingErrorReply()
        guard let text = reply.string else { return nil }
        return try Self.decode([Export].self, text, what: "exports")
    }

    /// Removes every manifest of the session (the blobs stay for other sessions, until they expire).
    public func remove(_ session: SessionID) async throws {
        _ = try await redis.pipeline(["seed", "incoming", "wanted", "exports"].map { ["DEL", Self.key(session, $0)] })
    }

    // MARK: Encoding

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            throw FileStoreError.cannotRead(path: "the session's \(what) manifest", reason: "\(error)")
        }
    }
}
