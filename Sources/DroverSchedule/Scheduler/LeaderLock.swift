import DroverRedis
import Foundation

/// The scheduler's fenced leader lock in Redis. Every key shares the hash tag `{sched}`, so
/// each script touches one Redis Cluster slot.
///
/// - `leader`: `TOKEN|EPOCH`, set NX with a TTL, renewed only by its holder.
/// - `epoch`: raised by one on every new leader (the fence).
/// - `done`: a hash of deployment id → the latest occurrence (epoch seconds) fired. A fire is
///   begun only by the current leader under its epoch, and only for an occurrence later than
///   `done`; it is committed (written to `done`) only if that leader still holds the same
///   epoch. A leader whose lock lapsed while it fired (a stalled process on a loaded machine)
///   is refused at the commit, so the new leader redoes the occurrence (the fire's effects are
///   idempotent) and each occurrence is committed once.
/// - The fence is the epoch: a fire passes while `epoch` is still the caller's and `leader`
///   holds the caller's token or has lapsed with no successor (every new leader raises `epoch`
///   before it sets `leader`, so an unchanged epoch means no one else has led since).
/// - `done-by`: deployment id → the `TOKEN|EPOCH` that committed `done`, so a commit retried
///   after a lost reply still answers `committed`.
/// - `pending`: deployment id → the occurrence begun and not yet committed. A fire that failed
///   or stalled partway may have created its session and enqueued its turn without recording
///   its run; the next leader redoes that occurrence before any later one, so it is completed
///   rather than passed over.
public struct LeaderLock: Sendable {
    public let redis: RedisClient
    public let token: String
    public let ttlMilliseconds: Int
    let leaderKey, epochKey, doneKey, doneByKey, pendingKey: String

    public init(redis: RedisClient, token: String, ttlMilliseconds: Int, prefix: String = "drover:{sched}") {
        self.redis = redis
        self.token = token
        self.ttlMilliseconds = ttlMilliseconds
        leaderKey = prefix + ":leader"
        epochKey = prefix + ":epoch"
        doneKey = prefix + ":done"
        doneByKey = prefix + ":done-by"
        pendingKey = prefix + ":pending"
    }

    static let acquire = RedisScript(
        name: "scheduler-acquire", idempotent: true,
        source: """
            local current = redis.call('GET', KEYS[1])
            if current then
              local sep = string.find(current, '|', 1, true)
              if string.sub(current, 1, sep - 1) == ARGV[1] then
                redis.call('PEXPIRE', KEYS[1], ARGV[2])
                return tonumber(string.sub(current, sep + 1))
              end
              return 0
            end
            local epoch = redis.call('INCR', KEYS[2])
            if redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'NX', 'PX', ARGV[2]) then
              return epoch
            end
            return 0
            """)

    static let release = RedisScript(
        name: "scheduler-release", idempotent: true,
        source: """
            local current = redis.call('GET', KEYS[1])
            if current == ARGV[1] .. '|' .. ARGV[2] then
              redis.call('DEL', KEYS[1])
              return 1
            end
            return 0
            """)

    static let beginFire = RedisScript(
        name: "scheduler-begin-fire", idempotent: true,
        source: """
            local fence = ARGV[1] .. '|' .. ARGV[2]
            local holder = redis.call('GET', KEYS[1])
            if redis.call('GET', KEYS[2]) ~= ARGV[2] or (holder and holder ~= fence) then
              return {'stale', redis.call('GET', KEYS[2]) or '0'}
            end
            local done = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '-1')
            if done >= tonumber(ARGV[4]) then
              return {'duplicate', tostring(done)}
            end
            redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
            return {'ok', tostring(done)}
            """)

    /// KEYS: leader epoch done done-by pending   ARGV: token epoch deployment occurrence
    static let finishFire = RedisScript(
        name: "scheduler-finish-fire", idempotent: true,
        source: """
            local fence = ARGV[1] .. '|' .. ARGV[2]
            local function settle(done)
              local pending = tonumber(redis.call('HGET', KEYS[5], ARGV[3]) or '-1')
              if pending ~= -1 and pending <= done then redis.call('HDEL', KEYS[5], ARGV[3]) end
            end
            local done = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '-1')
            if done == tonumber(ARGV[4]) and redis.call('HGET', KEYS[4], ARGV[3]) == fence then
              settle(done)
              return {'ok', tostring(done)}
            end
            local holder = redis.call('GET', KEYS[1])
            if redis.call('GET', KEYS[2]) ~= ARGV[2] or (holder and holder ~= fence) then
              return {'stale', redis.call('GET', KEYS[2]) or '0'}
            end
            if done >= tonumber(ARGV[4]) then
              settle(done)
              return {'duplicate', tostring(done)}
            end
            redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
            redis.call('HSET', KEYS[4], ARGV[3], fence)
            settle(tonumber(ARGV[4]))
            return {'ok', ARGV[4]}
            """)

    /// KEYS: pending   ARGV: deployment occurrence
    static let dropPendingFire = RedisScript(
        name: "scheduler-drop-pending", idempotent: true,
        source: """
            if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
              return redis.call('HDEL', KEYS[1], ARGV[1])
            end
            return 0
            """)

    /// Takes or renews the lock; the fence epoch while this scheduler leads, nil otherwise.
    public func acquireOrRenew() async throws -> Int64? {
        let reply = try await redis.eval(Self.acquire, keys: [leaderKey, epochKey], arguments: [token, String(ttlMilliseconds)])
        guard let epoch = reply.int, epoch > 0 else { return nil }
        return epoch
    }

    /// Gives the lock up at once (a clean shutdown), so another scheduler need not wait the TTL.
    public func release(epoch: Int64) async throws {
        _ = try await redis.eval(Self.release, keys: [leaderKey], arguments: [token, String(epoch)])
    }

    public enum Begin: Equatable, Sendable {
        case go
        case duplicate
        /// This scheduler no longer leads: another took the fence (`current` epoch).
        case stale(current: Int64)
    }

    public func begin(deployment: String, occurrence: Int64, epoch: Int64) async throws -> Begin {
        let reply = try await redis.eval(
            Self.beginFire, keys: [leaderKey, epochKey, doneKey, pendingKey],
            arguments: [token, String(epoch), deployment, String(occurrence)])
        switch reply.array?.first?.string {
        case "ok": return .go
        case "duplicate": return .duplicate
        default: return .stale(current: reply.array?.last?.int ?? 0)
        }
    }

    public enum Finish: Equatable, Sendable {
        case committed
        /// Another leader already committed this occurrence (or a later one).
        case duplicate
        /// This scheduler no longer leads: its fire is not committed, and the leader of
        /// epoch `current` will redo it.
        case stale(current: Int64)
    }

    /// Commits a begun fire, only while this scheduler still holds `epoch`.
    public func finish(deployment: String, occurrence: Int64, epoch: Int64) async throws -> Finish {
        let reply = try await redis.eval(
            Self.finishFire, keys: [leaderKey, epochKey, doneKey, doneByKey, pendingKey],
            arguments: [token, String(epoch), deployment, String(occurrence)])
        switch reply.array?.first?.string {
        case "ok": return .committed
        case "duplicate": return .duplicate
        default: return .stale(current: reply.array?.last?.int ?? 0)
        }
    }

    /// The latest occurrence fired for each deployment.
    public func fired() async throws -> [String: Int64] {
        try await occurrences(doneKey)
    }

    /// Occurrences begun and not committed, by deployment.
    public func pending() async throws -> [String: Int64] {
        try await occurrences(pendingKey)
    }

    /// Forgets a pending occurrence that is no longer owed (its deployment was paused or its
    /// schedule changed since), unless another fire has replaced it.
    public func dropPending(deployment: String, occurrence: Int64) async throws {
        _ = try await redis.eval(Self.dropPendingFire, keys: [pendingKey], arguments: [deployment, String(occurrence)])
    }

    private func occurrences(_ key: String) async throws -> [String: Int64] {
        let reply = try await redis.send(["HGETALL", key])
        var result: [String: Int64] = [:]
        let items = reply.array ?? []
        var index = 0
        while index + 1 < items.count {
            if let key = items[index].string, let value = items[index + 1].int { result[key] = value }
            index += 2
        }
        return result
    }
}
