import DroverCore
import DroverRedis
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@testable import DroverJobs

/// The batch runner learns that a turn ended from the append script's publication, not from
/// polling every session it waits on. The safety poll is set to an hour here, so only the
/// publication (or the check made when the wait starts) can wake a waiter.
@Suite("Settle notifications")
struct SettleNotifierTests {
    private static func status(_ payload: SessionEventPayload) -> NewEvent { NewEvent(payload) }

    @Test("a waiter wakes on the settle the append script publishes, with no poll to find it")
    func wakesOnThePublication() async throws {
        try await withRedisClient { client, _ in
            let log = SessionLog(redis: client, database: nil)
            let session = SessionID.make()
            try await log.create(session)
            let running = try await log.append(session, [Self.status(.sessionStatusRunning)])
            let notifier = SessionSettleNotifier(log: log, safetyPoll: .seconds(3600))
            let waiter = Task { await notifier.settled(session, pastSeq: running.lastSeq, within: 3600) }
            // Settle only once the subscription is listening: a publication nobody hears is the
            // safety poll's to find, an hour away.
            let listening = try await eventually(within: .seconds(60)) {
                try await client.send(["PUBSUB", "NUMSUB", SessionLog.settledChannel]).array?.last?.int == 1
            }
            #expect(listening)
            _ = try await log.append(session, [Self.status(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))])
            try await finishing(within: .seconds(60)) { await waiter.value }
        }
    }

    @Test("a session that settled before the wait began wakes its waiter at once")
    func settledBeforeTheWait() async throws {
        try await withRedisClient { client, _ in
            let log = SessionLog(redis: client, database: nil)
            let session = SessionID.make()
            try await log.create(session)
            let running = try await log.append(session, [Self.status(.sessionStatusRunning)])
            _ = try await log.append(session, [Self.status(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))])
            let notifier = SessionSettleNotifier(log: log, safetyPoll: .seconds(3600))
            try await finishing(within: .seconds(60)) {
                await notifier.settled(session, pastSeq: running.lastSeq, within: 3600)
            }
        }
    }

    @Test("stop ends the subscription at once, so a finished batch leaves nothing listening to a Redis about to stop")
    func stopEndsTheSubscription() async throws {
        try await withRedisClient { client, _ in
            let log = SessionLog(redis: client, database: nil)
            let session = SessionID.make()
            try await log.create(session)
            let running = try await log.append(session, [Self.status(.sessionStatusRunning)])
            let notifier = SessionSettleNotifier(log: log, safetyPoll: .seconds(3600))
            let waiter = Task { await notifier.settled(session, pastSeq: running.lastSeq, within: 3600) }
            func listeners() async throws -> Int64? { try await client.send(["PUBSUB", "NUMSUB", SessionLog.settledChannel]).array?.last?.int }
            #expect(try await eventually { try await listeners() == 1 })
            await notifier.stop()
            // Its waiter is let go, and the subscription is gone without waiting out any grace.
            try await finishing(within: .seconds(60)) { await waiter.value }
            #expect(try await eventually { try await listeners() == 0 })
        }
    }
}
