import DroverCore
import DroverRedis
import Foundation

/// The work queues of self-hosted environments, in Redis: one per environment, one live item per
/// session. The brain queues an item when a self-hosted session needs hands; the SDK's
/// `EnvironmentWorker` polls, acknowledges, heartbeats and stops it over the API.
///
/// A lease is held until its deadline on Redis' clock. The heartbeat's `expected_last_heartbeat`
/// is the fence, as the SDK defines it: a worker whose lease lapsed or was taken over gets the
/// precondition error and stops serving the session. When a lease lapses under an acknowledged
/// item, the item is not offered again until the calls its worker was running have their error
/// results (`RemoteHandsSweeper`), so no second worker runs them again.
public struct WorkQueue: Sendable {
    public struct Options: Sendable {
        /// How long a polled item stays with its poller before it must be acknowledged.
        public var claimTTL: Duration = .seconds(5)
        /// The lease an acknowledgement or a heartbeat gives when the worker asks for no other.
        public var leaseTTL: Duration = .seconds(60)
        /// The range a worker's `desired_ttl_seconds` is held to.
        public var leaseRange: ClosedRange<Int> = 2...600

        public init() {}
    }

    public let redis: RedisClient
    public let options: Options
    private let waiters: BlockingWaiters

    public init(redis: RedisClient, options: Options = Options()) {
        self.redis = redis
        self.options = options
        self.waiters = BlockingWaiters(redis: redis)
    }

    /// Every environment that has had work, so the sweeper needs no `SCAN`.
    static let environmentsKey = "drover:work:environments"

    struct Keys {
        let prefix, queued, leased, live, marker: String
        init(_ environment: String) {
            prefix = "drover:{w:\(environment)}:"
            queued = prefix + "queued"
            leased = prefix + "leased"
            live = prefix + "live"
            marker = prefix + "marker"
        }
        func item(_ id: String) -> String { prefix + "item:" + id }
        var items: String { prefix + "items" }
    }

    // MARK: The brain's side

    /// The session's live item, queued now if it has none. Returns its id and whether it is new.
    @discardableResult
    public func ensure(environment: String, session: SessionID) async throws(WorkQueueError) -> (id: String, created: Bool) {
        let keys = Keys(environment)
        let reply = try await run(
            WorkQueueScripts.ensure, keys: [keys.live], [keys.prefix, session.rawValue, Identifier.make(prefix: "work"), environment])
        guard let fields = reply.array, fields.count == 2, let created = fields[0].int, let id = fields[1].string else {
            throw .unexpectedReply("\(reply)")
        }
        if created == 1 { _ = try await send(["SADD", Self.environmentsKey, environment]) }
        return (id, created == 1)
    }

    /// Asks the session's live item to stop (an interrupt, a termination): a queued item stops at
    /// once, a running worker reads `stopping` at its next heartbeat. Returns the item's id, if any.
    @discardableResult
    public func stopSession(environment: String, session: SessionID) async throws(WorkQueueError) -> String? {
        let keys = Keys(environment)
        let reply = try await run(WorkQueueScripts.stopSession, keys: [keys.live], [keys.prefix, session.rawValue])
        guard let fields = reply.array, fields.first?.string == "ok", fields.count == 3 else { return nil }
        return fields[2].string
    }

    // MARK: The worker's side

    /// Claims the oldest queued item, waiting up to `wait` for one to arrive. `claimTTL` is how
    /// long the poller has to acknowledge it (the SDK's `reclaim_older_than_ms`).
    public func poll(environment: String, worker: String, wait: Duration, claimTTL: Duration? = nil) async throws -> WorkItem? {
        let keys = Keys(environment)
        let ttl = (claimTTL ?? options.claimTTL).milliseconds
        let clock = ContinuousClock()
        let deadline = clock.now + wait
        while true {
            let reply = try await run(WorkQueueScripts.poll, keys: [keys.queued], [keys.prefix, worker, String(ttl)])
            if let item = WorkItem(fields: reply.hashFields) { return item }
            let remaining = deadline - clock.now
            if remaining <= .milliseconds(1) { return nil }
            try await waiters.wait(on: keys.marker, for: remaining)
        }
    }

    public func acknowledge(environment: String, id: String) async throws(WorkQueueError) -> WorkTransition {
        let keys = Keys(environment)
        return try Self.transition(
            try await run(WorkQueueScripts.ack, keys: [keys.item(id)], [keys.prefix, id, String(options.leaseTTL.milliseconds)]))
    }

    /// Extends the lease if `expected` is the heartbeat the server holds (`NO_HEARTBEAT` before
    /// the first; nil compares nothing).
    public func heartbeat(
        environment: String, id: String, expected: String?, desiredTTLSeconds: Int?
    ) async throws(WorkQueueError) -> HeartbeatOutcome {
        let keys = Keys(environment)
        let seconds = desiredTTLSeconds.map { min(max($0, options.leaseRange.lowerBound), options.leaseRange.upperBound) }
        let ttl = seconds.map { $0 * 1000 } ?? Int(options.leaseTTL.milliseconds)
        let reply = try await run(WorkQueueScripts.heartbeat, keys: [keys.item(id)], [keys.prefix, id, expected ?? "", String(ttl)])
        guard let fields = reply.array, let status = fields.first?.string else { throw .unexpectedReply("\(reply)") }
        func lease(extended: Bool, ttlField: Int) -> WorkLease? {
            guard fields.count > ttlField, let state = fields[1].string.flatMap(WorkItem.State.init(rawValue:)) else { return nil }
            return WorkLease(
                state: state, lastHeartbeat: fields[2].string ?? "", extended: extended, ttlSeconds: Int((fields[ttlField].int ?? 0) / 1000))
        }
        switch status {
        case "ok":
            guard let lease = lease(extended: fields.count > 3 && fields[3].int == 1, ttlField: 4) else { throw .unexpectedReply("\(reply)") }
            return .recorded(lease)
        case "precondition":
            guard let lease = lease(extended: false, ttlField: 3) else { throw .unexpectedReply("\(reply)") }
            return .preconditionFailed(lease)
        case "gone": return .notFound
        default: throw .unexpectedReply("\(reply)")
        }
    }

    /// `force` stops at once; otherwise a running worker is asked to finish (`stopping`).
    public func stop(environment: String, id: String, force: Bool) async throws(WorkQueueError) -> WorkTransition {
        let keys = Keys(environment)
        return try Self.transition(try await run(WorkQueueScripts.stop, keys: [keys.item(id)], [keys.prefix, id, force ? "1" : "0"]))
    }

    /// Sets metadata keys (a string value) or deletes them (nil). False if the item is gone.
    public func updateMetadata(environment: String, id: String, patch: [String: String?]) async throws(WorkQueueError) -> Bool {
        let keys = Keys(environment)
        let json = JSONValue.object(patch.mapValues { $0.map(JSONValue.string) ?? .null }).compactJSON
        let reply = try await run(WorkQueueScripts.updateMetadata, keys: [keys.item(id)], [json])
        return reply.array?.first?.string == "ok"
    }

    // MARK: Reading

    public func item(environment: String, id: String) async throws(WorkQueueError) -> WorkItem? {
        WorkItem(fields: try await send(["HGETALL", Keys(environment).item(id)]).hashFields)
    }

    /// Items newest first, `limit` of them after skipping `offset`.
    public func items(environment: String, offset: Int, limit: Int) async throws(WorkQueueError) -> [WorkItem] {
        let keys = Keys(environment)
        let ids = try await send(["ZREVRANGE", keys.items, String(offset), String(offset + limit - 1)]).array?.compactMap(\.string) ?? []
        guard !ids.isEmpty else { return [] }
        let replies: [RedisValue]
        do {
            replies = try await redis.pipeline(ids.map { ["HGETALL", keys.item($0)] }, idempotent: true)
        } catch {
            throw .redis(error)
        }
        return replies.compactMap { WorkItem(fields: $0.hashFields) }
    }

    public func stats(environment: String) async throws(WorkQueueError) -> WorkQueueStats {
        let keys = Keys(environment)
        let reply = try await run(WorkQueueScripts.stats, keys: [keys.queued], [keys.prefix])
        guard let fields = reply.array, fields.count == 4 else { throw .unexpectedReply("\(reply)") }
        let oldest = fields[2].string ?? ""
        return WorkQueueStats(
            depth: Int(fields[0].int ?? 0), pending: Int(fields[1].int ?? 0), oldestQueuedAt: oldest.isEmpty ? nil : oldest,
            workersPolling: Int(fields[3].int ?? 0))
    }

    // MARK: Lapsed leases

    /// Lapses every lease past its deadline, and returns the items whose open calls still need
    /// their error results, with their sessions.
    public func lapsed(environment: String, limit: Int = 100) async throws(WorkQueueError) -> [(id: String, session: String)] {
        let keys = Keys(environment)
        let reply = try await run(WorkQueueScripts.lapse, keys: [keys.leased], [keys.prefix, String(limit)])
        let values = reply.array?.compactMap(\.string) ?? []
        return stride(from: 0, to: values.count - 1, by: 2).map { (values[$0], values[$0 + 1]) }
    }

    /// Puts a lapsed item back in line, or stops it if a stop was asked for.
    public func settle(environment: String, id: String) async throws(WorkQueueError) {
        let keys = Keys(environment)
        _ = try await run(WorkQueueScripts.settle, keys: [keys.item(id)], [keys.prefix, id])
    }

    public func environments() async throws(WorkQueueError) -> [String] {
        try await send(["SMEMBERS", Self.environmentsKey]).array?.compactMap(\.string).sorted() ?? []
    }

    // MARK: Plumbing

    private static func transition(_ reply: RedisValue) throws(WorkQueueError) -> WorkTransition {
        guard let fields = reply.array, let status = fields.first?.string else { throw .unexpectedReply("\(reply)") }
        let state = fields.count > 1 ? fields[1].string.flatMap(WorkItem.State.init(rawValue:)) : nil
        switch (status, state) {
        case ("ok", let state?): return .done(state)
        case ("conflict", let state?): return .conflict(state)
        case ("gone", _): return .notFound
        default: throw .unexpectedReply("\(reply)")
        }
    }

    private func run(_ script: RedisScript, keys: [String], _ arguments: [String]) async throws(WorkQueueError) -> RedisValue {
        do {
            return try await redis.eval(script, keys: keys, arguments: arguments)
        } catch {
            throw .redis(error)
        }
    }

    private func send(_ arguments: [String]) async throws(WorkQueueError) -> RedisValue {
        do {
            return try await redis.send(arguments, idempotent: true)
        } catch {
            throw .redis(error)
        }
    }
}

/// Blocking connections for long polls, kept for reuse: a poll waits in `BZPOPMIN` on its
/// environment's marker, which every new or requeued item touches, instead of polling Redis.
final class BlockingWaiters: Sendable {
    private let redis: RedisClient
    private let idle = Locked<[RedisBlockingConnection]>([])
    private static let keepIdle = 8

    init(redis: RedisClient) {
        self.redis = redis
    }

    func wait(on marker: String, for duration: Duration) async throws {
        let connection = idle.withLock { $0.popLast() } ?? redis.blockingConnection(name: "work-poll")
        do {
            try await connection.send(["BZPOPMIN", marker, String(format: "%.3f", max(duration.seconds, 0.001))])
        } catch {
            connection.close()
            throw error
        }
        let kept = idle.withLock { connections -> Bool in
            guard connections.count < Self.keepIdle else { return false }
            connections.append(connection)
            return true
        }
        if !kept { connection.close() }
    }

    deinit {
        for connection in idle.withLock({ $0 }) { connection.close() }
    }
}
