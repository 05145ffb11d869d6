import DroverRedis
import Foundation

/// `drover batch cancel`: a flag in Redis that the run holding the batch watches for. The run
/// stops at once, ends the sessions of its running items and marks every unfinished item
/// cancelled; with no run holding the batch, the command does that itself.
public enum BatchCancel {
    static func key(_ batchId: String) -> String { "drover:batch:\(batchId):cancel" }

    /// Asks the run of `batchId` to cancel; the flag lapses after a day.
    public static func request(redis: RedisClient, batchId: String) async throws {
        _ = try await redis.send(["SET", key(batchId), "1", "EX", "86400"])
    }

    public static func isRequested(redis: RedisClient, batchId: String) async throws -> Bool {
        try await redis.send(["EXISTS", key(batchId)], idempotent: true).int == 1
    }

    /// Called when a run starts: a cancel meant for an earlier run does not stop this one.
    public static func clear(redis: RedisClient, batchId: String) async throws {
        _ = try await redis.send(["DEL", key(batchId)])
    }
}
