import DroverRedis
import Foundation

/// One run of a batch at a time: two processes working the same items would each start the
/// other's sessions. The holder is `host:pid`; a holder on this host whose process is gone (a
/// run killed with -9) is taken over at once rather than after the lease runs out.
public struct BatchLock: Sendable {
    public struct Held: Error, CustomStringConvertible, Sendable {
        public let batchId: String
        public let holder: String
        public var description: String {
            "batch \(batchId) is already running (\(holder)). Fix: wait for that run to finish, or stop it; a rerun then continues where it left off"
        }
    }

    let redis: RedisClient
    let key: String
    let holder: String
    static let lease = 30_000

    public init(redis: RedisClient, batchId: String) {
        self.redis = redis
        key = Self.key(batchId)
        holder = "\(ProcessInfo.processInfo.hostName):\(getpid())"
    }

    static func key(_ batchId: String) -> String { "drover:batch:\(batchId):lock" }

    /// Whether a run of the batch holds its lock now: it is running, or was killed less than a
    /// lease ago.
    public static func isHeld(redis: RedisClient, batchId: String) async throws -> Bool {
        try await redis.send(["EXISTS", key(batchId)], idempotent: true).int == 1
    }

    public func acquire(batchId: String) async throws {
        for _ in 0..<2 {
            let reply = try await redis.send(["SET", key, holder, "NX", "PX", String(Self.lease)])
            if reply.string == "OK" { return }
            guard let current = try await redis.send(["GET", key]).string else { continue }
            let parts = current.split(separator: ":")
            if parts.count == 2, String(parts[0]) == ProcessInfo.processInfo.hostName, let pid = pid_t(parts[1]),
                kill(pid, 0) != 0 && errno == ESRCH
            {
                // The holder died without letting go; take over only if it is still the holder.
                _ = try await redis.send([
                    "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", "1", key, current,
                ])
                continue
            }
            throw Held(batchId: batchId, holder: current)
        }
        throw Held(batchId: batchId, holder: "another process")
    }

    /// Keeps the lock while `body` runs, then lets it go.
    public func holding<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let renewal = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Self.lease / 3))
                _ = try? await redis.send([
                    "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0", "1", key,
                    holder, String(Self.lease),
                ])
            }
        }
        defer { renewal.cancel() }
        let result = try await body()
        _ = try? await redis.send([
            "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", "1", key, holder,
        ])
        return result
    }
}
