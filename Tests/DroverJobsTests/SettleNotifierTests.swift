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
    /// A running session, a notifier that polls once an hour, and how many listen on the channel.
    private struct Setup {
        let client: RedisClient
        let log: SessionLog
        let session: SessionID
        let runningSeq: Int64
        let notifier: SessionSettleNotifier

        func listeners() async throws -> Int64? {
            try await client.send(["PUBSUB", "NUMSUB", SessionLog.settledChannel]).array?.last?.int
        }

        func settle() async throws {
            _ = try await log.append(session, [NewEvent(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))])
        }
    }

    private func withRunningSession(_ body: (Setup) async throws -> Void) async throws {
        try await withRedisClient { client, _ in
            let log = SessionLog(redis: client, database: nil)
            let session = SessionID.make()
            try await log.create(session)
            let running = try await log.append(session, [NewEvent(.sessionStatusRunning)])
            let notifier = SessionSettleNotifier(log: log, safetyPoll: .seconds(3600))
            try await body(Setup(client: client, log: log, session: session, runningSeq: running.lastSeq, notifier: notifier))
        }
    }

    @Test("a waiter wakes on the settle the append script publishes, with no poll to find it")
    func wakesOnThePublication() async throws {
        try await withRunningSession { setup in
            let waiter = Task { await setup.notifier.settled(setup.session, pastSeq: setup.runningSeq, within: 3600) }
            // Settle only once the subscription is listening: a publication nobody hears is the
            // safety poll's to find, an hour away.
            #expect(try await eventually { try await setup.listeners() == 1 })
            try await setup.settle()
            try await finishing(within: .seconds(60)) { await waiter.value }
        }
    }

    @Test("a session that settled before the wait began wakes its waiter at once")
    func settledBeforeTheWait() async throws {
        try await withRunningSession { setup in
            try await setup.settle()
            try await finishing(within: .seconds(60)) {
                await setup.notifier.settled(setup.session, pastSeq: setup.runningSeq, within: 3600)
            }
        }
    }

    @Test("stop ends the subscription at once, so a finished batch leaves nothing listening to a Redis about to stop")
    func stopEndsTheSubscription() async throws {
        try await withRunningSession { setup in
            let waiter = Task { await setup.notifier.settled(setup.session, pastSeq: setup.runningSeq, within: 3600) }
            #expect(try await eventually { try await setup.listeners() == 1 })
            await setup.notifier.stop()
            // Its waiter is let go, and the subscription is gone without waiting out any grace.
            try await finishing(within: .seconds(60)) { await waiter.value }
            #expect(try await eventually { try await setup.listeners() == 0 })
        }
    }
}
