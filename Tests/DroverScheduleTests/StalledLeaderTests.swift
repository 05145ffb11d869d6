import DroverBrain
import DroverCore
import DroverQueue
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@testable import DroverSchedule

/// A leader that stalls past its lock TTL in the middle of a fire (a loaded machine) must not
/// make the occurrence fire twice: its commit is refused, and the new leader's redo of the fire
/// lands on the same session, run and turn task.
@Suite("Stalled leader")
struct StalledLeaderTests {
    /// Locks that never lapse by themselves within a test: each test cuts its lock short with
    /// PEXPIRE when it wants it to lapse. Beside stress-ng, three Redis calls once took over 10 s.
    static let ttl = 600_000

    @Test("a leader whose lock lapsed mid-fire is refused at the commit; the new leader commits once")
    func lapsedLeaderRefusedAtCommit() async throws {
        try await withRedisServer { server in
            let redis = try await server.client()
            defer { redis.close() }
            let stalled = LeaderLock(redis: redis, token: "schd_a", ttlMilliseconds: Self.ttl)
            let successor = LeaderLock(redis: redis, token: "schd_b", ttlMilliseconds: Self.ttl)
            let occurrence: Int64 = 1_795_000_000

            let oldEpoch = try #require(try await stalled.acquireOrRenew())
            #expect(try await stalled.begin(deployment: "depl_1", occurrence: occurrence, epoch: oldEpoch) == .go)
            #expect(try await successor.acquireOrRenew() == nil, "the lock is held")

            // The leader stalls: no renewal arrives, and its lock lapses in Redis' own time (cut
            // to 50 ms here, so that the steps above have all the time a loaded machine needs).
            _ = try await redis.send(["PEXPIRE", "drover:{sched}:leader", "50"])
            let deadline = ContinuousClock.now + .seconds(120)
            var taken: Int64?
            while taken == nil, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                taken = try await successor.acquireOrRenew()
            }
            let newEpoch = try #require(taken, "the lock never lapsed")
            #expect(newEpoch > oldEpoch)

            // Nothing was committed, so the new leader begins the same occurrence and commits it.
            #expect(try await successor.begin(deployment: "depl_1", occurrence: occurrence, epoch: newEpoch) == .go)
            #expect(try await successor.finish(deployment: "depl_1", occurrence: occurrence, epoch: newEpoch) == .committed)
            // A commit retried after a lost reply still answers committed; nothing else changes.
            #expect(try await successor.finish(deployment: "depl_1", occurrence: occurrence, epoch: newEpoch) == .committed)

            // The stalled leader wakes and finishes its fire: refused, so it counts nothing.
            #expect(try await stalled.finish(deployment: "depl_1", occurrence: occurrence, epoch: oldEpoch) == .stale(current: newEpoch))
            #expect(try await stalled.begin(deployment: "depl_1", occurrence: occurrence + 60, epoch: oldEpoch) == .stale(current: newEpoch))
            #expect(try await successor.begin(deployment: "depl_1", occurrence: occurrence, epoch: newEpoch) == .duplicate)
            #expect(try await successor.fired() == ["depl_1": occurrence])
        }
    }

    @Test("a leader whose lock lapsed with no successor still commits: the epoch is unchanged")
    func lapsedWithoutSuccessor() async throws {
        try await withRedisServer { server in
            let redis = try await server.client()
            defer { redis.close() }
            let lock = LeaderLock(redis: redis, token: "schd_a", ttlMilliseconds: Self.ttl)
            let epoch = try #require(try await lock.acquireOrRenew())
            #expect(try await lock.begin(deployment: "depl_1", occurrence: 60, epoch: epoch) == .go)
            _ = try await redis.send(["PEXPIRE", "drover:{sched}:leader", "1"])
            let deadline = ContinuousClock.now + .seconds(120)
            while try await redis.send(["EXISTS", "drover:{sched}:leader"]).int != 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(try await lock.finish(deployment: "depl_1", occurrence: 60, epoch: epoch) == .committed)
            // Once anyone takes the lock, the epoch rises and the old fence is refused.
            let next = try #require(try await LeaderLock(redis: redis, token: "schd_b", ttlMilliseconds: Self.ttl).acquireOrRenew())
            #expect(try await lock.begin(deployment: "depl_1", occurrence: 120, epoch: epoch) == .stale(current: next))
        }
    }

    @Test("a fire redone after its turn already ran adds no session, run, event or turn task")
    func redoneFireAddsNothing() async throws {
        try await SchedulerRig.with { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            let row = try await rig.store.find("every-minute")
            let queue = TaskQueue(redis: rig.redis)
            let first = try await scheduler.firer.fire(row, scheduledAt: minute(1), now: minute(1) + 1)

            // A worker takes the turn and finishes it before the redo arrives.
            let claim = try await queue.claim(TurnQueue.defaultName, workerId: "wrkr_test", leaseTTL: .seconds(30))
            let lease = try #require(claim.leases.first)
            _ = try await queue.ack(lease)

            let again = try await scheduler.firer.fire(row, scheduledAt: minute(1), now: minute(1) + 9)
            #expect(again.objectValue?["session_id"] == first.objectValue?["session_id"])
            #expect(again.objectValue?["id"] == first.objectValue?["id"])
            let stats = try await queue.stats(TurnQueue.defaultName)
            #expect(stats.ready == 0 && stats.leased == 0, "the redo queued another turn: \(stats)")
            #expect(stats.totals.enqueued == 1)
            #expect(try await rig.counts() == [Timestamp.seconds(minute(1)): 1])
            let session = try SessionID(first.objectValue?["session_id"]?.stringValue ?? "")
            let events = try await SessionLog(redis: rig.redis, database: rig.store.database).read(session)
            #expect(events.map(\.type) == ["user.message"])
        }
    }
}
