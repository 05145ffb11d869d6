import DroverCore
import DroverDatabase
import DroverMetrics
import DroverRedis
import Foundation
import Logging

/// Mirrors every session event from the Redis mirror streams into SQLite.
///
/// It reads all shards through one consumer group, writes each batch in one transaction
/// (idempotent on `(session_id, seq)`), and acks and deletes the stream entries only after the
/// commit. Killed at any point, it loses nothing: entries it had read but not acked are delivered
/// again, to itself on restart or to another recorder after `claimIdle`.
public final class Recorder: Sendable {
    public struct Options: Sendable {
        public var group = "recorder"
        public var consumer = "recorder"
        public var batchSize = 1000
        public var block: Duration = .milliseconds(500)
        /// After a batch smaller than `batchSize`, how long the next read waits to gather more.
        /// Under a steady trickle, reading again at once made a batch (an XREADGROUP, a SQLite
        /// commit, an ack pipeline) of one or two events, one and a half per batch item; the
        /// linger adds at most this to the mirror's lag and none while it keeps up with a flood.
        public var linger: Duration = .milliseconds(10)
        /// Entries another consumer has held this long are taken over.
        public var claimIdle: Duration = .seconds(30)
        /// Sessions quiet this long, and fully mirrored, have their Redis streams trimmed.
        public var retentionIdle: Duration = .seconds(600)
        public var retentionInterval: Duration = .seconds(30)
        /// Called with each batch once it is in SQLite and before its entries are acked: if it
        /// throws, the batch is read again, so what it does happens at least once per event
        /// (the webhooks of status changes).
        public var afterCommit: (@Sendable ([StoredEvent]) async throws -> Void)?
        public init() {}
    }

    public struct Stats: Sendable, Codable, Equatable {
        public var eventsRecorded: Int = 0
        public var batches: Int = 0
        public var lastBatchSize: Int = 0
        /// Time from append (the mirror entry's Redis timestamp) to SQLite commit.
        public var lastLagMs: Double = 0
        public var maxLagMs: Double = 0
        public var trimmedSessions: Int = 0

        enum CodingKeys: String, CodingKey {
            case batches
            case eventsRecorded = "events_recorded"
            case lastBatchSize = "last_batch_size"
            case lastLagMs = "last_lag_ms"
            case maxLagMs = "max_lag_ms"
            case trimmedSessions = "trimmed_sessions"
        }
    }

    public let redis: RedisClient
    public let database: MirrorDatabase
    public let options: Options
    private let log: SessionLog
    private let statsBox = Locked(Stats())
    private let logger = Logger(label: "drover.recorder")
    /// Called with each batch's lags, for benchmarks.
    private let lagObserver: (@Sendable ([Double]) -> Void)?

    public init(redis: RedisClient, database: MirrorDatabase, options: Options = Options(), lagObserver: (@Sendable ([Double]) -> Void)? = nil) {
        self.redis = redis
        self.database = database
        self.options = options
        self.log = SessionLog(redis: redis, database: database)
        self.lagObserver = lagObserver
    }

    public var stats: Stats { statsBox.value }

    static var streams: [String] { (0..<mirrorShardCount).map(SessionKeys.mirror) }

    /// Runs until the calling task is cancelled.
    public func run() async throws {
        try await createGroups()
        _ = try await drainPending()
        // On a cluster, a reader per shard; on one server, one read over every shard.
        let shardReads = redis.isCluster ? ShardReads() : nil
        let connection = shardReads == nil ? redis.blockingConnection(name: "recorder") : nil
        defer { connection?.close() }
        let readers = shardReads.map { reads in
            Task {
                await withTaskGroup(of: Void.self) { group in
                    for (shard, stream) in Self.streams.enumerated() {
                        group.addTask { await self.readShard(stream, number: shard, into: reads) }
                    }
                }
            }
        }
        defer {
            readers?.cancel()
            shardReads?.close()
        }
        let clock = ContinuousClock()
        var lastClaim = clock.now
        var lastRetention = clock.now
        var outage = RedisOutage("the recorder")
        // After a full batch, the next is read while this one is written to SQLite; after a
        // smaller one, once the linger is over. Entries a read delivered
        // and nobody recorded (a failure, a shutdown) stay pending for this consumer: the next
        // start, or the end of an outage, records them (`drainPending`).
        var reading: Task<RedisValue, Error>?
        defer { reading?.cancel() }
        let next = { [options] in
            Task {
                guard let connection else { return try await shardReads!.take() }
                return try await connection.send(Self.readGroup(options, streams: Self.streams, from: ">", block: options.block))
            }
        }
        while !Task.isCancelled {
            do {
                if outage.isDown {
                    // Back from an outage: the groups may be gone with a server that lost its data,
                    // and entries delivered to this consumer just before the break are pending.
                    try await createGroups()
                    _ = try await drainPending()
                }
                // The read is a task of its own, so stopping the recorder must cancel it: else a
                // stop waits out the read's BLOCK time.
                let current = reading ?? next()
                let reply = try await withTaskCancellationHandler {
                    try await current.value
                } onCancel: {
                    current.cancel()
                }
                let arrived = clock.now
                let full = Self.entryCount(reply) >= options.batchSize
                // A full batch means more is waiting: read it while this one is written.
                reading = full ? next() : nil
                try await record(reply)
                outage.recovered(logger: logger)
                if !full, options.linger > .zero {
                    try await Task.sleep(until: arrived + options.linger, clock: clock)
                }
                if clock.now - lastClaim >= options.claimIdle {
                    lastClaim = clock.now
                    _ = try await claimAbandoned()
                }
                if clock.now - lastRetention >= options.retentionInterval {
                    lastRetention = clock.now
                    _ = try await applyRetention()
                }
            } catch  where Task.isCancelled {
                // Shutting down: whatever broke the last call (a read cut short, a Redis that
                // restarted a moment ago) is not a failure of the recorder.
                return
            } catch  where RedisOutage.isOutage(error) {
                reading?.cancel()
                reading = nil
                try await outage.wait(after: error, logger: logger)
            }
        }
    }

    /// Records everything available now and returns how many entries it processed. For tests
    /// and `drover recorder --once`.
    @discardableResult
    public func runOnce() async throws -> Int {
        try await createGroups()
        let pending = try await drainPending()
        return try await recordUntilEmpty(from: ">") + pending
    }

    /// Entries delivered to this consumer before a crash and never acked.
    private func drainPending() async throws -> Int {
        try await recordUntilEmpty(from: "0")
    }

    /// Reads and records batches until a read comes back empty. `from` is ">" for entries never
    /// delivered, or "0" for this consumer's pending ones.
    private func recordUntilEmpty(from position: String) async throws -> Int {
        var total = 0
        while true {
            let count = try await record(try await readEveryShard(from: position))
            total += count
            if count == 0 { return total }
        }
    }

    /// One XREADGROUP over every mirror shard, without blocking; on a cluster, where a command
    /// may not span slots, one per shard in one pipeline (one round trip per master).
    private func readEveryShard(from position: String) async throws -> RedisValue {
        guard redis.isCluster else {
            return try await redis.send(Self.readGroup(options, streams: Self.streams, from: position, block: nil))
        }
        let replies = try await redis.pipeline(Self.streams.map { Self.readGroup(options, streams: [$0], from: position, block: nil) })
        var streams: [RedisValue] = []
        for reply in replies {
            streams += try reply.throwingErrorReply().array ?? []
        }
        return .array(streams)
    }

    /// XREADGROUP over `streams`, from the same position in each.
    private static func readGroup(_ options: Options, streams: [String], from position: String, block: Duration?) -> [String] {
        var command = ["XREADGROUP", "GROUP", options.group, options.consumer, "COUNT", String(options.batchSize)]
        if let block { command += ["BLOCK", String(block.milliseconds)] }
        return command + ["STREAMS"] + streams + Array(repeating: position, count: streams.count)
    }

    /// On a cluster: blocks on one shard's stream and hands what it reads to the recorder's loop,
    /// until cancelled. An outage (a master failing over) is waited out here; the loop goes on
    /// recording the other shards meanwhile.
    private func readShard(_ stream: String, number: Int, into reads: ShardReads) async {
        let connection = redis.blockingConnection(name: "rec-\(number)")
        defer { connection.close() }
        // The readers share one pair of log lines per outage (`ShardReads.readerDown`), not one each.
        var quiet = logger
        quiet.logLevel = .critical
        var outage = RedisOutage("the recorder's reader of \(stream)")
        while !Task.isCancelled {
            do {
                let reply = try await connection.send(Self.readGroup(options, streams: [stream], from: ">", block: options.block))
                if outage.isDown {
                    outage.recovered(logger: quiet)
                    if reads.readerUp(number) { logger.notice("Redis is back; the recorder's shard readers resumed") }
                }
                if Self.entryCount(reply) > 0 { await reads.deliver(reply) }
            } catch  where Task.isCancelled {
                return
            } catch {
                // A master that came back without its data lost the group with it: make it again.
                if case .serverError("NOGROUP", _) = error as? RedisError {
                    try? await createGroup(stream)
                } else if !RedisOutage.isOutage(error) {
                    logger.warning("recorder read failed", metadata: ["stream": "\(stream)", "error": "\(error)"])
                } else if !outage.isDown, reads.readerDown(number) {
                    logger.warning(
                        "Redis is unreachable; the recorder's shard readers keep retrying until it is back", metadata: ["error": "\(error)"])
                }
                do { try await outage.wait(after: error, logger: quiet) } catch { return }
            }
        }
    }

    /// Takes over entries that another recorder read and then died holding.
    func claimAbandoned() async throws -> Int {
        var total = 0
        for stream in Self.streams {
            let reply = try await redis.send([
                "XAUTOCLAIM", stream, options.group, options.consumer, String(options.claimIdle.milliseconds), "0-0",
                "COUNT", String(options.batchSize),
            ])
            guard let parts = reply.array, parts.count >= 2 else { continue }
            total += try await record(.array([.array([.bulk(Array(stream.utf8)), parts[1]])]))
        }
        return total
    }

    /// Trims the Redis streams of quiet sessions whose events SQLite holds in full.
    public func applyRetention() async throws -> Int {
        let idleSeconds = Int(options.retentionIdle.seconds)
        var trimmed = 0
        for (id, lastSeq) in try await database.trimCandidates(idleSeconds: options.retentionIdle.seconds, limit: 500) {
            guard let session = try? SessionID(id) else { continue }
            if try await log.trim(session, mirroredSeq: lastSeq, idleSeconds: idleSeconds) {
                try await database.markTrimmed(id, through: lastSeq)
                trimmed += 1
            }
        }
        if trimmed > 0 {
            statsBox.withLock { $0.trimmedSessions += trimmed }
        }
        return trimmed
    }

    private func createGroups() async throws {
        for stream in Self.streams { try await createGroup(stream) }
    }

    private func createGroup(_ stream: String) async throws {
        do {
            try await redis.send(["XGROUP", "CREATE", stream, options.group, "0", "MKSTREAM"])
        } catch {
            // send throws RedisError only; BUSYGROUP means the group exists already.
            guard case .serverError(let code, _) = error, code == "BUSYGROUP" else { throw error }
        }
    }

    /// How many entries an XREADGROUP-shaped reply holds, over all its streams.
    static func entryCount(_ reply: RedisValue) -> Int {
        (reply.array ?? []).reduce(0) { total, stream in total + (stream.array?.last?.array?.count ?? 0) }
    }

    /// Parses an XREADGROUP-shaped reply, commits it to SQLite, then acks and deletes it.
    @discardableResult
    private func record(_ reply: RedisValue) async throws -> Int {
        guard let streams = reply.array else { return 0 }
        var batch: [MirrorDatabase.MirroredEvent] = []
        var stored: [StoredEvent] = []
        var entryIds: [String: [String]] = [:]
        var lags: [Double] = []
        let now = Date().timeIntervalSince1970 * 1000
        for stream in streams {
            guard let pair = stream.array, pair.count == 2, let key = pair[0].string, let entries = pair[1].array else { continue }
            for entry in entries {
                guard let parts = entry.array, parts.count == 2, let entryId = parts[0].string else { continue }
                entryIds[key, default: []].append(entryId)
                guard let fields = parts[1].array else { continue }  // deleted entry: ack only
                guard let (event, epoch) = Self.mirrorEntry(fields) else {
                    logger.warning("skipping malformed mirror entry", metadata: ["stream": "\(key)", "entry": "\(entryId)"])
                    continue
                }
                stored.append(event)
                batch.append(
                    .init(
                        session: event.session, seq: event.seq, type: event.type, epoch: epoch, json: event.json,
                        processedAt: event.processedAt, id: event.id))
                if let appendedMs = Double(entryId.prefix { $0 != "-" }) {
                    lags.append(max(0, now - appendedMs))
                }
            }
        }
        let count = entryIds.values.reduce(0) { $0 + $1.count }
        guard count > 0 else { return 0 }
        try await database.record(batch)
        try await options.afterCommit?(stored)
        let committed = Date().timeIntervalSince1970 * 1000
        let commitCost = committed - now
        lags = lags.map { $0 + commitCost }
        let lastLag = lags.max() ?? 0
        // Before the stats move: whoever sees this batch counted has seen its lags too.
        lagObserver?(lags)
        let stats = statsBox.withLock { stats in
            stats.eventsRecorded += batch.count
            stats.batches += 1
            stats.lastBatchSize = batch.count
            stats.lastLagMs = lastLag
            stats.maxLagMs = max(stats.maxLagMs, lastLag)
            return stats
        }
        DroverMetrics.recorderEvents.increment(by: batch.count)
        DroverMetrics.recorderLag.record(lastLag / 1000)
        var commands: [[String]] = []
        for (stream, ids) in entryIds {
            commands.append(["XACK", stream, options.group] + ids)
            commands.append(["XDEL", stream] + ids)
        }
        // Published for `drover recorder status`; it expires if this recorder stops.
        let statsKey = Self.statsKey(options.consumer)
        commands.append([
            "HSET", statsKey, "events_recorded", String(stats.eventsRecorded), "batches", String(stats.batches),
            "last_batch_size", String(stats.lastBatchSize), "last_lag_ms", String(format: "%.1f", stats.lastLagMs),
            "max_lag_ms", String(format: "%.1f", stats.maxLagMs), "last_commit_ms", String(Int64(committed)),
        ])
        commands.append(["EXPIRE", statsKey, "300"])
        _ = try await redis.pipeline(commands, idempotent: true)
        return count
    }

    /// A mirror stream entry's fields (`s` session, `q` seq, `t` type, `e` JSON, `f` fence
    /// epoch) as the event and its epoch; nil for a malformed entry.
    static func mirrorEntry(_ fields: [RedisValue]) -> (event: StoredEvent, epoch: Int64)? {
        let values = RedisValue.array(fields).hashFields
        guard let session = values["s"], let seq = values["q"].flatMap({ Int64($0) }), let json = values["e"] else { return nil }
        return (StoredEvent(session: session, seq: seq, type: values["t"] ?? "", json: json), values["f"].flatMap { Int64($0) } ?? 0)
    }

    static func statsKey(_ consumer: String) -> String { "drover:recorder:\(consumer)" }

    /// Events appended but not mirrored yet: what is still in the mirror streams, oldest first
    /// per stream. A report that must count every event reads them beside SQLite, so it is right
    /// before any recorder has run. An event the recorder has committed but not yet deleted is
    /// in both; the caller keeps the one SQLite has.
    public static func unmirrored(_ redis: RedisClient) async throws -> [StoredEvent] {
        var events: [StoredEvent] = []
        for stream in streams {
            var start = "-"
            while true {
                let reply = try await redis.send(["XRANGE", stream, start, "+", "COUNT", "5000"], idempotent: true)
                guard let entries = reply.array, !entries.isEmpty else { break }
                for entry in entries {
                    guard let parts = entry.array, parts.count == 2, let entryId = parts[0].string else { continue }
                    start = "(" + entryId
                    if let fields = parts[1].array, let (event, _) = mirrorEntry(fields) { events.append(event) }
                }
                if entries.count < 5000 { break }
            }
        }
        return events
    }

    /// What each live recorder last published: consumer name to its fields.
    public static func published(_ redis: RedisClient) async throws -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        for key in try await redis.scanKeys(matching: "drover:recorder:*", count: 100) {
            result[String(key.dropFirst("drover:recorder:".count))] = try await redis.send(["HGETALL", key], idempotent: true).hashFields
        }
        return result
    }

    /// Events appended but not yet recorded, per the consumer group (Redis 7 `lag` plus pending).
    public static func backlog(_ redis: RedisClient, group: String = "recorder") async throws -> Int {
        var total = 0
        for stream in streams {
            guard let reply = try? await redis.send(["XINFO", "GROUPS", stream], idempotent: true), let groups = reply.array else { continue }
            for entry in groups {
                guard let fields = entry.array else { continue }
                var values: [String: RedisValue] = [:]
                var index = 0
                while index + 1 < fields.count {
                    values[fields[index].string ?? ""] = fields[index + 1]
                    index += 2
                }
                guard values["name"]?.string == group else { continue }
                total += Int(values["pending"]?.int ?? 0) + Int(values["lag"]?.int ?? 0)
            }
        }
        return total
    }
}

/// The mirror's backlog as a scrape shows it, read from Redis at the scrape.
public enum RecorderMetrics {
    static let backlog = SampledGauges("drover_recorder_backlog_events")

    public static func sample(_ redis: RedisClient) async {
        guard let events = try? await Recorder.backlog(redis) else { return }
        backlog.set([[]: Double(events)])
    }
}
