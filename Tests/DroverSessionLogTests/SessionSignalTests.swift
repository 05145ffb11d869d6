import DroverCore
import DroverRedis
import DroverTesting
import Foundation
import Testing

@testable import DroverSessionLog

/// Waiters learn that a turn settled, or that a user interrupted a session, from the append
/// script's publication, not from a poll or a connection each. The safety poll is set to an hour
/// here (but in the test of the poll), so only the publication (or the check made when the wait
/// starts) can wake a waiter.
@Suite("Session signals")
struct SessionSignalTests {
    /// A running session, and a signal of `kind` that polls once an hour unless told otherwise.
    private struct Setup {
        let client: RedisClient
        let log: SessionLog
        let session: SessionID
        let runningSeq: Int64
        let signal: SessionSignal
        let channel: String

        func listeners() async throws -> Int64? {
            try await client.send(["PUBSUB", "NUMSUB", channel]).array?.last?.int
        }

        func settle() async throws {
            _ = try await log.append(session, [NewEvent(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))])
        }

        func interrupt() async throws {
            _ = try await log.append(session, [NewEvent(.userInterrupt(UserInterrupt()))])
        }

        func say(_ text: String) async throws {
            _ = try await log.append(session, [NewEvent(.userMessage(UserMessage(text: text)))])
        }

        /// A wait that is over once it returns, whatever woke it.
        func waiter() -> Task<Void, Never> {
            Task { await signal.wait(session, pastSeq: runningSeq) }
        }
    }

    private enum Kind { case settled, interrupted }

    private func withRunningSession(_ kind: Kind, safetyPoll: Duration = .seconds(3600), _ body: (Setup) async throws -> Void) async throws {
        try await withRedisClient { client, _ in
            let log = SessionLog(redis: client, database: nil)
            let session = SessionID.make()
            try await log.create(session)
            let running = try await log.append(session, [NewEvent(.sessionStatusRunning)])
            let signal: SessionSignal
            let channel: String
            switch kind {
            case .settled: (signal, channel) = (SessionSignal.settled(log, safetyPoll: safetyPoll), SessionLog.settledChannel)
            case .interrupted: (signal, channel) = (SessionSignal.interrupted(log, safetyPoll: safetyPoll), SessionLog.interruptedChannel)
            }
            let setup = Setup(client: client, log: log, session: session, runningSeq: running.lastSeq, signal: signal, channel: channel)
            do {
                try await body(setup)
            } catch {
                await signal.stop()
                throw error
            }
            await signal.stop()
        }
    }

    @Test("a waiter wakes on the settle the append script publishes, with no poll to find it")
    func wakesOnTheSettle() async throws {
        try await withRunningSession(.settled) { setup in
            let waiter = setup.waiter()
            // Settle only once the subscription is listening: a publication nobody hears is the
            // safety poll's to find, an hour away.
            #expect(try await eventually { try await setup.listeners() == 1 })
            try await setup.settle()
            try await finishing(within: .seconds(60)) { await waiter.value }
        }
    }

    @Test("a session that settled before the wait began wakes its waiter at once")
    func settledBeforeTheWait() async throws {
        try await withRunningSession(.settled) { setup in
            try await setup.settle()
            try await finishing(within: .seconds(60)) { await setup.signal.wait(setup.session, pastSeq: setup.runningSeq) }
        }
    }

    @Test("a user.interrupt wakes the turn's waiter; other events do not")
    func wakesOnTheInterrupt() async throws {
        try await withRunningSession(.interrupted) { setup in
            let woken = Locked(false)
            let waiter = Task {
                await setup.signal.wait(setup.session, pastSeq: setup.runningSeq)
                woken.withLock { $0 = true }
            }
            #expect(try await eventually { try await setup.listeners() == 1 })
            // A message is no interrupt, and neither is a settle: the waiter sleeps on.
            try await setup.say("more work")
            try await setup.settle()
            #expect(try await setup.log.interruptSeqs([setup.session]) == [nil])
            try await Task.sleep(for: .milliseconds(300))
            #expect(woken.value == false)
            try await setup.interrupt()
            try await finishing(within: .seconds(60)) { await waiter.value }
            #expect(woken.value)
            #expect(try await setup.log.interruptSeqs([setup.session]) == [setup.runningSeq + 3])
        }
    }

    @Test("an interrupt from before the turn began does not stop it; one after it does, even if sent before the wait")
    func interruptPastTheSeqOnly() async throws {
        try await withRunningSession(.interrupted) { setup in
            try await setup.interrupt()
            let after = try await setup.log.meta(setup.session)!.lastSeq
            // The turn that began after this interrupt must not hear it.
            let woken = Locked(false)
            let waiter = Task {
                await setup.signal.wait(setup.session, pastSeq: after)
                woken.withLock { $0 = !Task.isCancelled }
            }
            #expect(try await eventually { try await setup.listeners() == 1 })
            try await Task.sleep(for: .milliseconds(300))
            waiter.cancel()
            await waiter.value
            #expect(woken.value == false)
            #expect(try await setup.log.interruptSeqs([setup.session]) == [after])
            // One sent before the waiter was in place is found when the wait begins.
            try await finishing(within: .seconds(60)) { await setup.signal.wait(setup.session, pastSeq: setup.runningSeq) }
        }
    }

    @Test("an interrupt whose publication was lost is found by the safety poll")
    func safetyPollFindsALostPublication() async throws {
        try await withRunningSession(.interrupted, safetyPoll: .milliseconds(100)) { setup in
            let waiter = setup.waiter()
            #expect(try await eventually { try await setup.listeners() == 1 })
            // What the append script records, without the publication: as if it went out while
            // the subscription was reconnecting.
            _ = try await setup.client.send(["HSET", SessionKeys(setup.session).meta, "interrupt_seq", "\(setup.runningSeq + 1)"])
            try await finishing(within: .seconds(60)) { await waiter.value }
        }
    }

    @Test("stop ends the subscription at once and lets every waiter go")
    func stopEndsTheSubscription() async throws {
        try await withRunningSession(.settled) { setup in
            let waiter = setup.waiter()
            #expect(try await eventually { try await setup.listeners() == 1 })
            await setup.signal.stop()
            try await finishing(within: .seconds(60)) { await waiter.value }
            #expect(try await eventually { try await setup.listeners() == 0 })
        }
    }

    @Test("a cancelled waiter returns at once")
    func cancelledWaiterReturns() async throws {
        try await withRunningSession(.interrupted) { setup in
            let waiter = setup.waiter()
            #expect(try await eventually { try await setup.listeners() == 1 })
            waiter.cancel()
            try await finishing(within: .seconds(60)) { await waiter.value }
        }
    }
}
