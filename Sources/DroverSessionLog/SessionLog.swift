import DroverCore
import DroverDatabase
import DroverRedis
import Foundation
import Logging

/// The append-only event log of every session: Redis Streams while a session is hot, SQLite
/// (mirrored by the recorder) always. Reads fall back to SQLite transparently.
public final class SessionLog: Sendable {
    static let logger = Logger(label: "drover.session-log")
    public static let defaultMaximumEventBytes = 1 << 20
    /// The append script publishes a session's id here when it goes idle or is terminated.
    public static let settledChannel = "drover:settled"
    /// The append script publishes a session's id here when a `user.interrupt` is appended to it,
    /// and keeps that event's seq in the session's meta (`interrupt_seq`).
    public static let interruptedChannel = "drover:interrupted"

    public let redis: RedisClient
    public let database: MirrorDatabase?
    public let maximumEventBytes: Int

    public init(redis: RedisClient, database: MirrorDatabase?, maximumEventBytes: Int = SessionLog.defaultMaximumEventBytes) {
        self.redis = redis
        self.database = database
        self.maximumEventBytes = maximumEventBytes
    }

    // MARK: Writing

    /// Creates the session's log, with the agent its turns run and its environment's `config`, as
    /// the stored JSON text. Returns false if it existed already. Callers with an agent use the
    /// typed `create(_:agent:environment:)` (DroverBrain); the text form is the storage seam.
    @discardableResult
    public func create(
        _ session: SessionID, agentJSON agent: String? = nil, environmentJSON environment: String? = nil
    ) async throws(SessionLogError)
        -> Bool
    {
        if let row = try await mirrored({ try await database?.session(session.rawValue) }) {
            try await restore(session, from: row)
            return false
        }
        if agent != nil || environment != nil, let database {
            try await mirrored { try await database.saveSessionResource(session.rawValue, resource: agent, environment: environment) }
        }
        return try await createMinted(session, agentJSON: agent, environmentJSON: environment)
    }

    /// Creates the log of a session the caller has just minted (`SessionID.make()`), in Redis
    /// alone: a new id has no earlier life in SQLite to look up, and the caller saves its
    /// SQLite row (`MirrorDatabase.saveSessionResource`) in a transaction of its own, with its
    /// own bookkeeping, before anything can run in the session. Until then a worker finds the
    /// agent and environment in Redis, where this puts them. False if Redis had the log already.
    @discardableResult
    public func createMinted(
        _ session: SessionID, agentJSON agent: String?, environmentJSON environment: String?
    ) async throws(SessionLogError) -> Bool {
        let reply = try await run(SessionLogScripts.create, keys: [SessionKeys(session).meta], [agent ?? "", environment ?? ""])
        return reply.array?.first?.int == 1
    }

    /// The environment `config` the session was created with, as JSON.
    public func environmentJSON(_ session: SessionID) async throws(SessionLogError) -> String? {
        let reply = try await send(["HGET", SessionKeys(session).meta, "environment"])
        if let known = Self.environmentInMeta(reply) { return known }
        return try await mirrored { try await database?.session(session.rawValue)?.environment }
    }

    /// What the session was created with, as stored: its agent and its environment's `config`
    /// (see `agentJSON(_:)` and `environmentJSON(_:)`), in one round trip when Redis has both.
    public func createdWith(_ session: SessionID) async throws(SessionLogError) -> (agent: String?, environment: String?) {
        let fields = try await send(["HMGET", SessionKeys(session).meta, "agent", "environment"]).array ?? []
        let agent = fields.first.flatMap(Self.agentInMeta)
        let environment = fields.count > 1 ? Self.environmentInMeta(fields[1]) : nil
        if let agent, let environment { return (agent, environment) }
        let row = try await mirrored { try await database?.session(session.rawValue) }
        return (agent ?? row?.resource, environment ?? row?.environment)
    }

    /// The agent the session was created with, as its stored JSON text (see `agentSnapshot(_:)`).
    public func agentJSON(_ session: SessionID) async throws(SessionLogError) -> String? {
        let reply = try await send(["HGET", SessionKeys(session).meta, "agent"])
        if let known = Self.agentInMeta(reply) { return known }
        return try await mirrored { try await database?.session(session.rawValue)?.resource }
    }

    /// The agent as the meta holds it; nil when the meta cannot say (none there, or ''), and
    /// SQLite must.
    private static func agentInMeta(_ field: RedisValue) -> String? {
        guard let agent = field.string, !agent.isEmpty else { return nil }
        return agent
    }

    /// The environment as the meta holds it: '' is a session created with none (`.some(nil)`);
    /// no field at all is one restored from SQLite, which must say (nil).
    private static func environmentInMeta(_ field: RedisValue) -> String?? {
        guard let environment = field.string else { return nil }
        return .some(environment.isEmpty ? nil : environment)
    }

    /// Takes the session for one writer: from now on, appends under any earlier fence are refused.
    /// With `task`, the session is taken for that turn task, and refused (`.busy`) while another
    /// task's turn is running.
    public func takeFence(_ session: SessionID, task: String? = nil) async throws(SessionLogError) -> SessionFence {
        for _ in 0..<2 {
            let reply = try await run(SessionLogScripts.takeFence, keys: [SessionKeys(session).meta], [task ?? ""])
            guard let fields = reply.array, let ok = fields.first?.int else { throw .unexpectedReply("\(reply)") }
            if ok == 1, let epoch = fields[1].int { return SessionFence(session: session, epoch: epoch) }
            if fields.count > 1, fields[1].string == "busy" {
                throw .sessionBusy(session: session.rawValue, task: fields.count > 2 ? fields[2].string ?? "" : "")
            }
            try await warmUp(session)
        }
        throw .sessionNotFound(session.rawValue)
    }

    /// Ends `task`'s hold on the session (see `takeFence(_:task:)`) though the session is still
    /// running: its turn is over, and the next may start as soon as its input arrives.
    public func releaseTurn(_ session: SessionID, task: String) async throws(SessionLogError) {
        _ = try await run(SessionLogScripts.releaseTurn, keys: [SessionKeys(session).meta], [task])
    }

    /// The id the log gives the event at `seq`.
    public static func eventID(_ session: SessionID, seq: Int64) -> String {
        // Zero-padded to six digits as the append script's string.format('%06d') pads, without
        // a printf per event.
        let digits = String(seq)
        return "sevt_\(session.idPart)_" + (digits.utf8.count < 6 ? String(repeating: "0", count: 6 - digits.utf8.count) + digits : digits)
    }

    /// The sequence number in `id` when it names an event of `session` (see `eventID`), else nil.
    public static func seq(ofEventID id: String, in session: SessionID) -> Int64? {
        let prefix = "sevt_\(session.idPart)_"
        guard id.hasPrefix(prefix) else { return nil }
        let digits = id.dropFirst(prefix.count)
        guard (6...18).contains(digits.count), digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let seq = Int64(digits), seq > 0
        else { return nil }
        return seq
    }

    /// Appends events atomically and in order, assigning `seq`, `id` and `processed_at`.
    ///
    /// - `fence`: a worker's fence; refused once a newer one was taken (I1, docs/ARCHITECTURE.md). `nil` for events
    ///   from clients, which need no fence.
    /// - `clientKey`: makes a retried append (after a timeout, say) a no-op that returns the
    ///   first append's result.
    /// Appends typed events; see `append(_:_:fence:clientKey:)` for events already encoded.
    @discardableResult
    public func append(
        _ session: SessionID, _ payloads: [SessionEventPayload], fence: SessionFence? = nil, clientKey: String? = nil
    ) async throws(SessionLogError) -> AppendResult {
        try await append(session, payloads.map(NewEvent.init), fence: fence, clientKey: clientKey)
    }

    public func append(
        _ session: SessionID,
        _ events: [NewEvent],
        fence: SessionFence? = nil,
        clientKey: String? = nil
    ) async throws(SessionLogError) -> AppendResult {
        guard !events.isEmpty else {
            throw .invalidInput(field: "events", message: "nothing to append", fix: "pass at least one event")
        }
        for (index, event) in events.enumerated() where event.json.utf8.count > maximumEventBytes {
            throw .eventTooLarge(index: index, bytes: event.json.utf8.count, limit: maximumEventBytes)
        }
        if let clientKey, clientKey.isEmpty || clientKey.utf8.count > 256 {
            throw .invalidInput(field: "client_key", message: "must be 1 to 256 bytes", fix: "use a UUID or similar per logical append")
        }
        let keys = SessionKeys(session)
        // One per call, so that the script tells this call's own earlier attempt (sent again after
        // a broken connection) from another caller's append under the same client key.
        let nonce = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var arguments = [session.rawValue, session.idPart, String(fence?.epoch ?? -1), clientKey ?? "", nonce, String(events.count)]
        arguments.reserveCapacity(6 + events.count * 2)
        for event in events {
            arguments.append(event.type.rawValue)
            arguments.append(event.json)
        }
        let answers = events.compactMap(\.payload.answeredToolUse)
        arguments.append(String(answers.count))
        arguments += answers
        for _ in 0..<2 {
            let reply = try await run(SessionLogScripts.append, keys: [keys.log, keys.meta, keys.idempotency, keys.mirror], arguments)
            guard let fields = reply.array, let status = fields.first?.string else { throw .unexpectedReply("\(reply)") }
            switch status {
            case "ok", "duplicate":
                guard fields.count >= 4, let first = fields[1].int, let last = fields[2].int, let at = fields[3].string else {
                    throw .unexpectedReply("\(reply)")
                }
                let own = fields.count > 4 && fields[4].string == nonce
                let written = status == "ok" || own
                return AppendResult(firstSeq: first, lastSeq: last, processedAt: at, duplicate: !written, written: written ? (session, events) : nil)
            case "stale":
                throw .staleFence(session: session.rawValue, fence: fence?.epoch ?? -1, current: fields[1].int ?? -1)
            case "terminated":
                throw .sessionTerminated(session.rawValue)
            case "answered":
                throw .alreadyAnswered(session: session.rawValue, toolUse: fields.count > 1 ? fields[1].string ?? "" : "")
            case "cold":
                try await warmUp(session)
            default:
                throw .unexpectedReply("\(reply)")
            }
        }
        throw .sessionNotFound(session.rawValue)
    }

    /// What the append script writes for `events` from `first` on: `id` and `processed_at` put
    /// before the event's own fields.
    static func stored(_ events: [NewEvent], of session: SessionID, from first: Int64, at: String) -> [StoredEvent] {
        events.enumerated().map { offset, event in
            let seq = first + Int64(offset)
            let head = #"{"id":""# + eventID(session, seq: seq) + #"","processed_at":""# + at + "\""
            let json = event.json == "{}" ? head + "}" : head + "," + event.json.dropFirst()
            return StoredEvent(session: session.rawValue, seq: seq, type: event.type.rawValue, json: json)
        }
    }

    /// Brings a session whose Redis keys are gone back from SQLite.
    private func warmUp(_ session: SessionID) async throws(SessionLogError) {
        guard let row = try await mirrored({ try await database?.session(session.rawValue) }) else {
            throw .sessionNotFound(session.rawValue)
        }
        try await restore(session, from: row)
    }

    private func restore(_ session: SessionID, from row: MirrorDatabase.SessionRow) async throws(SessionLogError) {
        _ = try await run(
            SessionLogScripts.restore, keys: [SessionKeys(session).meta],
            [
                String(row.lastSeq), String(row.maxEpoch + 1), row.status, row.resource ?? "",
            ])
    }

    // MARK: Reading

    public struct Meta: Sendable, Equatable {
        public let lastSeq: Int64
        public let epoch: Int64
        public let status: String
        public let trimmedThrough: Int64
    }

    /// The session's last sequence number, from Redis or, for a cold session, SQLite; 0 if
    /// neither knows it.
    public func lastSeq(_ session: SessionID) async throws(SessionLogError) -> Int64 {
        if let seq = try await meta(session)?.lastSeq { return seq }
        return try await mirrored { try await database?.session(session.rawValue)?.lastSeq } ?? 0
    }

    /// Hands every event after `afterSeq` to `body`, oldest first, a page at a time (from SQLite
    /// where needed). Returns the last sequence number handed over, or `afterSeq`.
    @discardableResult
    public func replay(_ session: SessionID, afterSeq: Int64, _ body: (StoredEvent) -> Void) async throws(SessionLogError) -> Int64 {
        var last = afterSeq
        while true {
            let batch = try await read(session, afterSeq: last, limit: 1000)
            for event in batch { body(event) }
            last = batch.last?.seq ?? last
            if batch.count < 1000 { return last }
        }
    }

    /// The session's state in Redis, or nil if Redis does not know it.
    public func meta(_ session: SessionID) async throws(SessionLogError) -> Meta? {
        let reply = try await send(["HMGET", SessionKeys(session).meta, "seq", "epoch", "status", "trimmed_through"])
        return Self.meta(reply)
    }

    /// The state of many sessions in one round trip (nil for a session Redis does not know).
    public func metas(_ sessions: [SessionID]) async throws(SessionLogError) -> [Meta?] {
        guard !sessions.isEmpty else { return [] }
        let replies = try await pipeline(sessions.map { ["HMGET", SessionKeys($0).meta, "seq", "epoch", "status", "trimmed_through"] })
        return replies.map(Self.meta)
    }

    /// The seq of each session's latest `user.interrupt`, in one round trip (nil for none).
    public func interruptSeqs(_ sessions: [SessionID]) async throws(SessionLogError) -> [Int64?] {
        guard !sessions.isEmpty else { return [] }
        let replies = try await pipeline(sessions.map { ["HGET", SessionKeys($0).meta, "interrupt_seq"] })
        return replies.map { $0.string.flatMap { Int64($0) } }
    }

    /// Events after `afterSeq`, oldest first, at most `limit`. Events trimmed from Redis, or lost
    /// with it, come from SQLite.
    public func read(_ session: SessionID, afterSeq: Int64 = 0, limit: Int = 1000) async throws(SessionLogError) -> [StoredEvent] {
        let keys = SessionKeys(session)
        let limit = max(1, limit)
        let replies = try await pipeline([
            ["HMGET", keys.meta, "seq", "epoch", "status", "trimmed_through"],
            ["XRANGE", keys.log, "\(afterSeq + 1)-0", "+", "COUNT", String(limit)],
        ])
        guard let meta = Self.meta(replies[0]) else {
            guard let database else { throw .sessionNotFound(session.rawValue) }
            let events = try await mirrored { try await database.events(session: session.rawValue, afterSeq: afterSeq, limit: limit) }
            if events.isEmpty, try await mirrored { try await database.session(session.rawValue) } == nil {
                throw .sessionNotFound(session.rawValue)
            }
            return events
        }
        if afterSeq >= meta.trimmedThrough {
            return try Self.events(session, replies[1])
        }
        guard let database else { return try Self.events(session, replies[1]) }
        var events = try await mirrored { try await database.events(session: session.rawValue, afterSeq: afterSeq, limit: limit) }
        if events.count < limit {
            let from = events.last?.seq ?? afterSeq
            let rest = try await send(["XRANGE", keys.log, "\(from + 1)-0", "+", "COUNT", String(limit - events.count)])
            events += try Self.events(session, rest)
        }
        return events
    }

    /// Everything the brain needs to rebuild a session's context: its state and its whole log,
    /// in memory. For a log of any length, use `wake(_:chunkSize:_:)`, which streams it.
    public func wake(_ session: SessionID) async throws(SessionLogError) -> SessionSnapshot {
        var events: [StoredEvent] = []
        let woken: WokenSession
        do {
            woken = try await wake(session) { events += $0 }
        } catch let error as SessionLogError {
            throw error
        } catch {
            // The body above cannot throw, so every error is the log's own.
            throw .unexpectedReply("\(error)")
        }
        return SessionSnapshot(
            session: session, status: woken.status, lastSeq: woken.lastSeq, epoch: woken.epoch, events: events, source: woken.source)
    }

    /// The session's state, with its whole log handed to `body` a chunk of at most `chunkSize`
    /// events at a time, oldest first and without a gap: a session of any length wakes in
    /// memory bounded by one chunk. Events trimmed from Redis come from SQLite, including those
    /// retention trims while the wake is under way (the trim only drops mirrored events).
    public func wake(
        _ session: SessionID, chunkSize: Int = 5_000, _ body: ([StoredEvent]) async throws -> Void
    ) async throws -> WokenSession {
        let chunk = max(1, chunkSize)
        var sources = Set<SessionSnapshot.Source>()
        var meta = try await self.meta(session)
        if meta == nil, let row = try await mirrored({ try await database?.session(session.rawValue) }) {
            try await restore(session, from: row)
            meta = try await self.meta(session)
        }
        guard let meta else { throw SessionLogError.sessionNotFound(session.rawValue) }
        var after: Int64 = 0
        // Hands over SQLite's events after `after`, up to `end`.
        func fromSQLite(through end: Int64) async throws {
            guard let database else { return }
            while after < end {
                let limit = Int(min(Int64(chunk), end - after))
                let next = try await mirrored { try await database.events(session: session.rawValue, afterSeq: after, limit: limit) }
                guard let last = next.last else { return }
                sources.insert(.sqlite)
                try await body(next)
                after = last.seq
                if next.count < limit { return }
            }
        }
        // The trimmed prefix lives in SQLite only; the rest is in the Redis stream.
        try await fromSQLite(through: meta.trimmedThrough)
        let log = SessionKeys(session).log
        while true {
            let next = try Self.events(session, try await send(["XRANGE", log, "\(after + 1)-0", "+", "COUNT", String(chunk)]))
            // A stream that starts later than asked, or ends before the seq read at the start,
            // was trimmed since: the missing events are mirrored, so SQLite has them.
            let gapEnd = next.first.map { $0.seq - 1 } ?? meta.lastSeq
            if gapEnd > after {
                try await fromSQLite(through: gapEnd)
                if after < gapEnd {
                    Self.logger.error(
                        "events are in neither Redis nor SQLite; the wake skips them",
                        metadata: ["session": "\(session.rawValue)", "from": "\(after + 1)", "through": "\(gapEnd)"])
                    after = gapEnd
                }
            }
            guard let last = next.last else { break }
            sources.insert(.redis)
            try await body(next)
            after = last.seq
            if next.count < chunk { break }
        }
        let source: SessionSnapshot.Source = sources.count > 1 ? .both : (sources.first ?? .redis)
        return WokenSession(session: session, status: meta.status, lastSeq: meta.lastSeq, epoch: meta.epoch, source: source)
    }

    /// Follows the log: first every event after `afterSeq` (from SQLite where needed), then new
    /// ones as they are appended. Ends when the consumer stops iterating.
    public func tail(_ session: SessionID, afterSeq: Int64 = 0) -> AsyncThrowingStream<StoredEvent, Error> {
        let (stream, continuation) = AsyncThrowingStream<StoredEvent, Error>.makeStream(bufferingPolicy: .bufferingOldest(10_000))
        let connection = redis.blockingConnection(name: "tail")
        let task = Task {
            defer { connection.close() }
            do {
                var last = try await replay(session, afterSeq: afterSeq) { continuation.yield($0) }
                let key = SessionKeys(session).log
                // XREAD is a read: after an outage it is simply asked again from the last seq seen.
                var outage = RedisOutage("a session tail")
                while !Task.isCancelled {
                    let reply: RedisValue
                    do {
                        reply = try await connection.send(["XREAD", "COUNT", "1000", "BLOCK", "1000", "STREAMS", key, "\(last)-0"])
                        outage.recovered(logger: Self.logger)
                    } catch  where RedisOutage.isOutage(error) && !Task.isCancelled {
                        try await outage.wait(after: error, logger: Self.logger)
                        continue
                    }
                    guard let streams = reply.array, let entries = streams.first?.array, entries.count == 2 else { continue }
                    for event in try Self.events(session, entries[1]) where event.seq > last {
                        continuation.yield(event)
                        last = event.seq
                    }
                }
                continuation.finish()
            } catch is CancellationError {
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Removes the Redis copy of a quiet session's events once SQLite holds them all.
    func trim(_ session: SessionID, mirroredSeq: Int64, idleSeconds: Int) async throws(SessionLogError) -> Bool {
        let keys = SessionKeys(session)
        let reply = try await run(SessionLogScripts.trim, keys: [keys.log, keys.meta], [String(mirroredSeq), String(idleSeconds)])
        return reply.array?.first?.int == 1
    }

    // MARK: Plumbing

    static func meta(_ reply: RedisValue) -> Meta? {
        guard let fields = reply.array, fields.count == 4, let seq = fields[0].int else { return nil }
        return Meta(lastSeq: seq, epoch: fields[1].int ?? 0, status: fields[2].string ?? "idle", trimmedThrough: fields[3].int ?? 0)
    }

    static func events(_ session: SessionID, _ reply: RedisValue) throws(SessionLogError) -> [StoredEvent] {
        guard let entries = reply.array else {
            if reply.isNull { return [] }
            throw .unexpectedReply("\(reply)")
        }
        var events: [StoredEvent] = []
        events.reserveCapacity(entries.count)
        for entry in entries {
            guard let pair = entry.array, pair.count == 2, let id = pair[0].string, let fields = pair[1].array else {
                throw .unexpectedReply("\(entry)")
            }
            var type = "", json = ""
            var index = 0
            while index + 1 < fields.count {
                switch fields[index].string {
                case "t": type = fields[index + 1].string ?? ""
                case "e": json = fields[index + 1].string ?? ""
                default: break
                }
                index += 2
            }
            let seq = Int64(id.prefix { $0 != "-" }) ?? 0
            events.append(StoredEvent(session: session.rawValue, seq: seq, type: type, json: json))
        }
        return events
    }

    private func run(_ script: RedisScript, keys: [String], _ arguments: [String]) async throws(SessionLogError) -> RedisValue {
        do {
            return try await redis.eval(script, keys: keys, arguments: arguments)
        } catch {
            throw .redis(error)
        }
    }

    private func send(_ arguments: [String]) async throws(SessionLogError) -> RedisValue {
        do {
            return try await redis.send(arguments, idempotent: true)
        } catch {
            throw .redis(error)
        }
    }

    private func pipeline(_ commands: [[String]]) async throws(SessionLogError) -> [RedisValue] {
        do {
            return try await redis.pipeline(commands, idempotent: true)
        } catch {
            throw .redis(error)
        }
    }

    /// Runs a read or write on the SQLite mirror, reporting its failure as the log's own error.
    private func mirrored<T>(_ body: () async throws -> T) async throws(SessionLogError) -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            throw .database(error.message)
        } catch {
            throw .database("\(error)")
        }
    }
}
