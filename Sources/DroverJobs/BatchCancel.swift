import DroverCore
import DroverDatabase
import DroverRedis
import DroverSessionLog
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

    /// Cancels what is unfinished of a batch no run holds: each item becomes `cancelled` and its
    /// session ends for good, and the batch is marked cancelled. Returns how many items.
    public static func cancelUnfinished(batchId: String, log: SessionLog, database: MirrorDatabase) async throws -> Int {
        var cancelled = 0
        for row in try await database.batchItems(batchId) {
            guard var outcome = row.result.flatMap(ItemOutcome.decode), !outcome.status.isFinished else { continue }
            if let session = outcome.sessionId.flatMap({ try? SessionID($0) }) { try await log.terminateIfLive(session) }
            outcome.status = .cancelled
            outcome.error = "cancelled (drover batch cancel)"
            try await database.saveBatchItem(outcome, batchId: batchId)
            cancelled += 1
        }
        if let row = try await database.batch(batchId) {
            var resource = (try? JSONValue.parse(row.resource))?.objectValue ?? [:]
            resource["status"] = .string("cancelled")
            try await database.saveBatch(
                id: row.id, name: row.name, jobFile: row.jobFile, status: "cancelled", resource: JSONValue.object(resource).compactJSON)
        }
        return cancelled
    }
}

extension MirrorDatabase {
    /// Saves one item's outcome as its row of the batch.
    func saveBatchItem(_ outcome: ItemOutcome, batchId: String) async throws {
        try await saveBatchItem(outcome.row(batchId: batchId))
    }
}

extension ItemOutcome {
    /// The item's row of the batch.
    func row(batchId: String) -> MirrorDatabase.BatchItemRow {
        MirrorDatabase.BatchItemRow(
            batchId: batchId, itemKey: key, itemId: itemId, position: position, sessionId: sessionId, status: status.rawValue, result: json)
    }
}

extension SessionLog {
    /// Ends a session for good, unless it has ended already or the log no longer knows it.
    func terminateIfLive(_ session: SessionID) async throws {
        guard let meta = try await meta(session), meta.status != "terminated" else { return }
        _ = try await append(session, [.sessionStatusTerminated])
        try await endThreads(of: session)
    }
}
