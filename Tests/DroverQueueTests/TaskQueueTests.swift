import DroverCore
import DroverQueue
import DroverRedis
import DroverTesting
import Foundation
import Synchronization
import Testing

private func withQueue<T>(
    poolSize: Int = 4,
    options: TaskQueue.Options = TaskQueue.Options(),
    _ body: (TaskQueue, QueueName, RedisServerFixture) async throws -> T
) async throws -> T {
    try await withRedisClient(poolSize: poolSize) { client, server in
        try await body(TaskQueue(redis: client, options: options), try QueueName(uniqueQueueName()), server)
    }
}

/// A lease no test outlives. A test about expiry says so with a short lease of its own; the
/// others once held 5 s leases, which expired while a machine loaded with stress-ng held a test
/// back between its claim and its ack.
private let held: Duration = .seconds(600)

@Suite("Task queue")
struct TaskQueueTests {
    @Test("an expired lease is claimed again with epoch + 1, and the old epoch is refused")
    func leaseExpiry() async throws {
        try await withQueue { queue, name, _ in
            let enqueued = try await queue.enqueue(name, payload: #"{"n":1}"#)
            var first = try #require(try await queue.claim(name, workerId: "w1", leaseTTL: held).leases.first)
            #expect(first.taskId == enqueued.taskId)
            #expect(first.attempt == 1)

            // While held, nobody else gets it, and the holder can renew (here, to a short lease).
            #expect(try await queue.claim(name, workerId: "w2", leaseTTL: held).leases.isEmpty)
            #expect(try await queue.heartbeat(&first, leaseTTL: .milliseconds(150)) == .ok)

            try await Task.sleep(for: .milliseconds(300))
            // Past the deadline the lease is lost even before any sweep ran.
            var stale = first
            #expect(try await queue.heartbeat(&stale, leaseTTL: held) == .lost(.expired))

            let swept = try await queue.sweep(name, interval: .zero)
            #expect(swept == SweepResult(ran: true, requeued: 1, dead: 0))
            let second = try #require(try await queue.claim(name, workerId: "w2", leaseTTL: held).leases.first)
            #expect(second.taskId == first.taskId)
            #expect(second.epoch == first.epoch + 1)
            #expect(second.attempt == 2)

            #expect(try await queue.heartbeat(&stale, leaseTTL: held) == .lost(.superseded))
            #expect(try await queue.ack(first) == .lost(.superseded))
            #expect(try await queue.fail(first, error: "late", retryable: true) == .lost(.superseded))
            #expect(try await queue.ack(second) == .ok)
            // A retried ack (reply lost in transit) is recognised, not refused.
            #expect(try await queue.ack(second) == .ok)
            let stats = try await queue.stats(name)
            #expect(stats.leased == 0 && stats.ready == 0)
            #expect(stats.totals.acked == 1 && stats.totals.stalled == 1)
        }
    }

    @Test("8 claimers race over 10,000 tasks: each is claimed once, acked once, none lost")
    func contention() async throws {
        try await withQueue(poolSize: 12) { queue, name, _ in
            let total = 10_000
            let ids = try await withThrowingTaskGroup(of: [String].self) { group in
                for producer in 0..<4 {
                    group.addTask {
                        var ids: [String] = []
                        for n in stride(from: producer, to: total, by: 4) {
                            ids.append(try await queue.enqueue(name, payload: "{\"n\":\(n)}").taskId)
                        }
                        return ids
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(Set(ids).count == total)

            let claimed = try await withThrowingTaskGroup(of: ([String], Int).self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var mine: [String] = []
                        var refused = 0
                        while true {
                            let leases = try await queue.claim(name, workerId: "w\(worker)", leaseTTL: .seconds(60), max: 1 + worker % 4).leases
                            if leases.isEmpty { break }
                            for lease in leases {
                                mine.append(lease.taskId)
                                if try await queue.ack(lease) != .ok { refused += 1 }
                            }
                        }
                        return (mine, refused)
                    }
                }
                return try await group.reduce(into: ([String](), 0)) {
                    $0.0 += $1.0
                    $0.1 += $1.1
                }
            }
            #expect(claimed.1 == 0, "acks refused")
            #expect(claimed.0.count == total, "claims: \(claimed.0.count)")
            #expect(Set(claimed.0) == Set(ids))
            let stats = try await queue.stats(name)
            #expect(stats.ready == 0 && stats.leased == 0 && stats.dead == 0)
            #expect(stats.totals.acked == total)
        }
    }

    @Test("short leases under contention: a task is never held by two live leases, and each is acked once")
    func contentionWithExpiry() async throws {
        try await withQueue(poolSize: 12) { queue, name, _ in
            let total = 600
            for n in 0..<total { _ = try await queue.enqueue(name, payload: "{\"n\":\(n)}", maxStalls: 1000) }
            // Each worker sometimes sleeps past its lease before acking, so tasks are swept and
            // claimed again while the first holder still thinks it has them.
            let ttl: Int64 = 40
            let acked = Locked<[String: Int]>([:])
            let leases = Locked<[TaskLease]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var idle = 0
                        while idle < 20 {
                            _ = try await queue.sweep(name, interval: .milliseconds(20))
                            let claimed = try await queue.claim(name, workerId: "w\(worker)", leaseTTL: .milliseconds(ttl), max: 2).leases
                            if claimed.isEmpty {
                                idle += 1
                                try await Task.sleep(for: .milliseconds(10))
                                continue
                            }
                            idle = 0
                            leases.withLock { $0 += claimed }
                            for lease in claimed {
                                if Int.random(in: 0..<10) == 0 { try await Task.sleep(for: .milliseconds(60)) }
                                if try await queue.ack(lease) == .ok {
                                    acked.withLock { $0[lease.taskId, default: 0] += 1 }
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            // On Redis' clock, each lease of a task starts (deadline - ttl) no earlier than the
            // previous one's deadline: no two live leases ever overlap.
            let byTask = Dictionary(grouping: leases.value, by: \.taskId)
            var overlaps = 0
            var reclaimed = 0
            for (_, held) in byTask {
                let ordered = held.sorted { $0.epoch < $1.epoch }
                #expect(Set(ordered.map(\.epoch)).count == ordered.count)
                for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                    reclaimed += 1
                    if later.deadline - ttl < earlier.deadline { overlaps += 1 }
                }
            }
            #expect(overlaps == 0)
            #expect(reclaimed > 0, "no lease expired, so the test proved nothing")
            let counts = acked.value
            #expect(counts.count == total)
            #expect(counts.values.allSatisfy { $0 == 1 })
            let stats = try await queue.stats(name)
            #expect(stats.totals.acked == total)
        }
    }

    @Test("higher priority first, FIFO within a priority")
    func priorityOrder() async throws {
        try await withQueue { queue, name, _ in
            let low1 = try await queue.enqueue(name, payload: "1", priority: 0).taskId
            let high = try await queue.enqueue(name, payload: "2", priority: 900).taskId
            let low2 = try await queue.enqueue(name, payload: "3", priority: 0).taskId
            let mid = try await queue.enqueue(name, payload: "4", priority: 10).taskId
            let order = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 10).leases.map(\.taskId)
            #expect(order == [high, mid, low1, low2])
        }
    }

    @Test("a delayed task is not handed out before it is due, by Redis' clock")
    func delay() async throws {
        try await withQueue { queue, name, _ in
            let time = try await queue.redis.send(["TIME"], idempotent: true).array ?? []
            let before = (time.first?.int ?? 0) * 1000 + (time.last?.int ?? 0) / 1000
            let result = try await queue.enqueue(name, payload: "{}", delay: .seconds(2))
            #expect(result.state == "delayed")
            #expect(try await queue.stats(name).delayed == 1)
            let early = try await queue.claim(name, workerId: "w", leaseTTL: held)
            // However slow this machine is, a claim that ran before the due time got nothing.
            if early.now < before + 2000 {
                #expect(early.leases.isEmpty)
                let hint = try #require(early.nextDueIn)
                #expect(hint > .zero && hint <= .seconds(2))
            }
            // On a machine slow enough that the first claim ran after the due time, that claim
            // rightly took the task: it will not be handed out twice.
            var late: [TaskLease] = early.now >= before + 2000 ? early.leases : []
            let deadline = ContinuousClock.now + .seconds(10)
            while late.isEmpty && ContinuousClock.now < deadline {
                let claim = try await queue.claim(name, workerId: "w", leaseTTL: held)
                late = claim.leases
                if !late.isEmpty { #expect(claim.now >= before + 2000) }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(late.map(\.taskId) == [result.taskId])
        }
    }

    @Test("a dedupe key returns the waiting task; once claimed, the key is free again")
    func dedupe() async throws {
        try await withQueue { queue, name, _ in
            let first = try await queue.enqueue(name, payload: #"{"m":1}"#, dedupeKey: "session-1")
            let second = try await queue.enqueue(name, payload: #"{"m":2}"#, dedupeKey: "session-1")
            #expect(first.outcome == .enqueued)
            #expect(second.outcome == .deduplicated)
            #expect(second.taskId == first.taskId)
            let other = try await queue.enqueue(name, payload: "{}", dedupeKey: "session-2")
            #expect(other.taskId != first.taskId)
            _ = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 10)
            let third = try await queue.enqueue(name, payload: #"{"m":3}"#, dedupeKey: "session-1")
            #expect(third.outcome == .enqueued)
            #expect(third.taskId != first.taskId)
            // A retried enqueue with the same id is recognised.
            let again = try await queue.enqueue(name, payload: "{}", id: third.taskId)
            #expect(again.outcome == .exists)
            #expect(try await queue.stats(name).totals.enqueued == 3)
        }
    }

    @Test("a task goes to the dead-letter set after maxAttempts, keeping its error; requeue brings it back")
    func deadLetter() async throws {
        var options = TaskQueue.Options()
        options.backoffBase = .milliseconds(20)
        try await withQueue(options: options) { queue, name, _ in
            let id = try await queue.enqueue(name, payload: #"{"item":"a"}"#, maxAttempts: 3).taskId
            var outcomes: [FailOutcome] = []
            for attempt in 1...3 {
                var lease: TaskLease?
                for _ in 0..<100 where lease == nil {
                    lease = try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first
                    if lease == nil { try await Task.sleep(for: .milliseconds(10)) }
                }
                let held = try #require(lease)
                #expect(held.attempt == attempt)
                outcomes.append(try await queue.fail(held, error: "boom \(attempt)", retryable: true))
                // A retried fail gets the same answer and changes nothing.
                #expect(try await queue.fail(held, error: "boom again", retryable: true) == outcomes.last)
            }
            guard case .retrying = outcomes[0], case .retrying = outcomes[1] else {
                Issue.record("expected two retries, got \(outcomes)")
                return
            }
            #expect(outcomes[2] == .dead)
            let dead = try await queue.deadTasks(name)
            #expect(dead.map(\.id) == [id])
            #expect(dead.first?.lastError == "boom 3")
            #expect(dead.first?.attempts == 3)
            #expect(dead.first?.payload == #"{"item":"a"}"#)

            #expect(try await queue.requeue(name, taskId: id) == (true, "ready"))
            #expect(try await queue.requeue(name, taskId: id) == (false, "ready"))
            let again = try #require(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first)
            #expect(again.taskId == id && again.attempt == 1)

            // A non-retryable failure goes straight to the dead-letter set.
            let other = try await queue.enqueue(name, payload: "{}", maxAttempts: 5).taskId
            let lease = try #require(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first)
            #expect(lease.taskId == other)
            #expect(try await queue.fail(lease, error: "bad input", retryable: false) == .dead)
        }
    }

    @Test("release hands a lease back without spending an attempt, now or after a delay")
    func release() async throws {
        try await withQueue { queue, name, _ in
            let id = try await queue.enqueue(name, payload: "{}", maxAttempts: 1).taskId
            let first = try #require(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first)
            #expect(try await queue.release(first) == .ok)
            #expect(try await queue.release(first) == .ok)  // a retried release changes nothing
            let secondClaim = try await queue.claim(name, workerId: "w", leaseTTL: held)
            let second = try #require(secondClaim.leases.first)
            #expect(second.taskId == id && second.attempt == 1 && second.epoch == first.epoch + 1)
            #expect(try await queue.ack(first) == .lost(.superseded))

            // A delayed release. On a loaded machine any one claim may come late, so none is
            // assumed to come early: every claim is judged on Redis' own clock (`now`), and the
            // task must come back, but never before the delay has passed since a moment before
            // the release.
            let delay = 200
            #expect(try await queue.release(second, delay: .milliseconds(delay)) == .ok)
            var third: TaskLease?
            let giveUp = ContinuousClock.now + .seconds(10)
            while third == nil, ContinuousClock.now < giveUp {
                let claim = try await queue.claim(name, workerId: "w", leaseTTL: held)
                if let lease = claim.leases.first {
                    #expect(
                        claim.now >= secondClaim.now + Int64(delay), "claimed \(claim.now - secondClaim.now) ms after, before the \(delay) ms delay")
                    third = lease
                } else {
                    let dueIn = try #require(claim.nextDueIn, "a released task waits in the delayed set")
                    #expect(dueIn > .zero && dueIn <= .milliseconds(delay))
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let released = try #require(third, "the released task never came back within 10 s")
            #expect(released.taskId == id && released.attempt == 1)
            // With max_attempts 1, a failure now is final: releases never spent the attempt.
            #expect(try await queue.fail(released, error: "x", retryable: true) == .dead)
        }
    }

    @Test("reclaiming hands back the leases of owners that are gone, keeps the caller's own, and spends no attempt")
    func reclaim() async throws {
        try await withQueue { queue, name, _ in
            let gone = try await queue.enqueue(name, payload: "{\"n\":1}", maxAttempts: 1).taskId
            let mine = try await queue.enqueue(name, payload: "{\"n\":2}", maxAttempts: 1).taskId
            let dead = try #require(try await queue.claim(name, workerId: "worker-host-111/0", leaseTTL: held).leases.first)
            let kept = try #require(try await queue.claim(name, workerId: "worker-host-222/0", leaseTTL: held).leases.first)
            #expect(dead.taskId == gone && kept.taskId == mine)

            #expect(try await queue.reclaimLeases(name, keepingOwnerPrefix: "worker-host-222/") == 1)
            #expect(try await queue.reclaimLeases(name, keepingOwnerPrefix: "worker-host-222/") == 0)
            // The dead owner's lease is superseded; the kept one still heartbeats.
            var stale = dead
            #expect(try await queue.heartbeat(&stale, leaseTTL: held) == .lost(.released))
            var live = kept
            #expect(try await queue.heartbeat(&live, leaseTTL: held) == .ok)
            let again = try #require(try await queue.claim(name, workerId: "worker-host-222/1", leaseTTL: held).leases.first)
            #expect(again.taskId == gone && again.attempt == 1 && again.epoch == dead.epoch + 1)
            #expect(try await queue.ack(dead) == .lost(.superseded))
            // With max_attempts 1, a failure now is final: the reclaim spent no attempt.
            #expect(try await queue.fail(again, error: "x", retryable: true) == .dead)
            #expect(try await queue.stats(name).leased == 1)
        }
    }

    @Test("purge deletes waiting tasks and their dedupe keys, leaves leased ones unless asked")
    func purge() async throws {
        try await withQueue { queue, name, _ in
            // One task of each kind: dead, leased, ready (with a dedupe key) and delayed.
            _ = try await queue.enqueue(name, payload: "{}", maxAttempts: 1)
            let doomed = try #require(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first)
            #expect(try await queue.fail(doomed, error: "x", retryable: false) == .dead)
            _ = try await queue.enqueue(name, payload: "{}")
            _ = try #require(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first)
            _ = try await queue.enqueue(name, payload: "{}", dedupeKey: "one")
            _ = try await queue.enqueue(name, payload: "{}", delay: .seconds(60))

            #expect(try await queue.purge(name) == TaskQueue.PurgeResult(ready: 1, delayed: 1, dead: 1, leased: 0))
            let after = try await queue.stats(name)
            #expect(after.ready == 0 && after.delayed == 0 && after.dead == 0 && after.leased == 1)
            // The purged task's dedupe key is free again.
            #expect(try await queue.enqueue(name, payload: "{}", dedupeKey: "one").outcome == .enqueued)
            #expect(try await queue.purge(name, includeLeased: true) == TaskQueue.PurgeResult(ready: 1, delayed: 0, dead: 0, leased: 1))
            #expect(try await queue.stats(name).leased == 0)
        }
    }

    @Test("retries back off exponentially, with jitter, up to a cap")
    func backoff() async throws {
        try await withQueue { queue, _, _ in
            for attempt in 1...6 {
                let nominal = queue.options.backoffBase * (1 << (attempt - 1))
                let delay = queue.backoff(attempt: attempt)
                #expect(delay >= nominal / 2 && delay <= nominal)
            }
            #expect(queue.backoff(attempt: 40) <= queue.options.backoffCap)
        }
    }

    @Test("a task that stalls more than maxStalls goes to the dead-letter set")
    func stallLimit() async throws {
        try await withQueue { queue, name, _ in
            let id = try await queue.enqueue(name, payload: "{}", maxStalls: 1).taskId
            for round in 1...2 {
                _ = try #require(try await queue.claim(name, workerId: "crashy", leaseTTL: .milliseconds(30)).leases.first)
                try await Task.sleep(for: .milliseconds(60))
                let swept = try await queue.sweep(name, interval: .zero)
                #expect(swept.requeued == (round == 1 ? 1 : 0))
                #expect(swept.dead == (round == 2 ? 1 : 0))
            }
            let dead = try await queue.deadTasks(name)
            #expect(dead.first?.id == id)
            #expect(dead.first?.lastError.contains("lease expired 2 times") == true)
            #expect(dead.first?.lastError.contains("crashy") == true)
        }
    }

    @Test("the sweep runs once per interval however many callers")
    func sweepLock() async throws {
        try await withQueue { queue, name, _ in
            let results = try await withThrowingTaskGroup(of: SweepResult.self) { group in
                // An interval no loaded machine stretches six calls across (5 s once was).
                for _ in 0..<6 { group.addTask { try await queue.sweep(name, interval: .seconds(600)) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter(\.ran).count == 1)
        }
    }

    @Test("a paused queue accepts tasks but hands none out until resumed")
    func pauseResume() async throws {
        try await withQueue { queue, name, _ in
            try await queue.pause(name)
            let id = try await queue.enqueue(name, payload: "{}").taskId
            let paused = try await queue.claim(name, workerId: "w", leaseTTL: held)
            #expect(paused.paused && paused.leases.isEmpty)
            #expect(try await queue.stats(name).paused)
            try await queue.resume(name)
            #expect(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.map(\.taskId) == [id])
        }
    }

    @Test("a waiting consumer wakes for a new task without polling, and gives up when the wait runs out")
    func consumerWaits() async throws {
        try await withQueue { queue, name, _ in
            let consumer = queue.consumer(name, workerId: "w")
            defer { consumer.close() }
            #expect(try await consumer.next(leaseTTL: held, wait: .milliseconds(200)).isEmpty)

            let waiting = Task { try await consumer.next(leaseTTL: held, wait: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(100))
            let id = try await queue.enqueue(name, payload: "{}").taskId
            let leases = try await waiting.value
            #expect(leases.map(\.taskId) == [id])

            // A delayed task wakes a waiting consumer when it falls due.
            let delayed = try await queue.enqueue(name, payload: "{}", delay: .milliseconds(200)).taskId
            #expect(try await consumer.next(leaseTTL: held, wait: .seconds(30)).map(\.taskId) == [delayed])

            // Cancelling a waiting consumer ends its wait.
            let cancelled = Task { try await consumer.next(leaseTTL: held, wait: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(50))
            cancelled.cancel()
            await #expect(throws: CancellationError.self) { try await cancelled.value }
        }
    }

    @Test("Redis restarts (AOF) mid-run: no acknowledged enqueue is lost, clients reconnect by themselves")
    func redisRestart() async throws {
        try await withQueue { queue, name, server in
            let accepted = Locked<[String]>([])
            let producer = Task {
                for n in 0..<1500 {
                    let result = try await queue.enqueue(name, payload: "{\"n\":\(n)}")
                    accepted.withLock { $0.append(result.taskId) }
                }
            }
            while accepted.withLock({ $0.count }) < 300 { try await Task.sleep(for: .milliseconds(5)) }
            try await server.restart()
            try await producer.value
            let ids = accepted.withLock { $0 }
            #expect(ids.count == 1500)
            let stats = try await queue.stats(name)
            #expect(stats.ready == 1500)
            #expect(stats.totals.enqueued == 1500)
        }
    }

    @Test("Redis killed with SIGKILL under appendfsync always: acknowledged enqueues survive")
    func redisCrash() async throws {
        try await withRedisServer(appendFsync: "always") { server in
            let client = try await server.client()
            defer { client.close() }
            let queue = TaskQueue(redis: client)
            let name = try QueueName(uniqueQueueName())
            var ids: [String] = []
            for n in 0..<200 { ids.append(try await queue.enqueue(name, payload: "{\"n\":\(n)}").taskId) }
            await server.crash()
            try await server.startAgain()
            let leases = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 1000).leases
            #expect(leases.map(\.taskId) == ids)
        }
    }

    @Test("bad input gets a clear error that names the field, and nothing already queued is lost")
    func badInput() async throws {
        try await withQueue { queue, name, _ in
            let kept = try await queue.enqueue(name, payload: #"{"ok":true}"#).taskId
            let cases: [(String, () async throws -> Void)] = [
                ("payload", { _ = try await queue.enqueue(name, payload: "{not json") }),
                ("payload", { _ = try await queue.enqueue(name, payload: "") }),
                ("priority", { _ = try await queue.enqueue(name, payload: "{}", priority: 5000) }),
                ("delay", { _ = try await queue.enqueue(name, payload: "{}", delay: .seconds(-1)) }),
                ("max_attempts", { _ = try await queue.enqueue(name, payload: "{}", maxAttempts: 0) }),
                ("lease_ttl", { _ = try await queue.claim(name, workerId: "w", leaseTTL: .zero) }),
                ("queue", { _ = try QueueName("no spaces/allowed") }),
                ("queue", { _ = try QueueName("") }),
            ]
            for (field, call) in cases {
                do {
                    try await call()
                    Issue.record("accepted bad \(field)")
                } catch let error as TaskQueueError {
                    #expect(error.field == field)
                    #expect(error.description.contains("Fix:"))
                }
            }
            let big = "\"" + String(repeating: "x", count: 2 << 20) + "\""
            await #expect(throws: TaskQueueError.self) { try await queue.enqueue(name, payload: big) }
            #expect(try await queue.claim(name, workerId: "w", leaseTTL: held, max: 10).leases.map(\.taskId) == [kept])
        }
    }

    @Test("one ack call takes leases of several queues and answers each in order: acked, retried, superseded, gone")
    func batchAck() async throws {
        try await withQueue { queue, name, _ in
            let other = try QueueName(uniqueQueueName("other"))
            for n in 0..<3 { _ = try await queue.enqueue(name, payload: #"{"n":\#(n)}"#) }
            _ = try await queue.enqueue(other, payload: "{}")
            let leases = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 3).leases
            #expect(leases.count == 3)
            let elsewhere = try #require(try await queue.claim(other, workerId: "w", leaseTTL: held).leases.first)

            // leases[1] is acked first, so acking it again is a retried ack; leases[2] is
            // superseded: its lease is given back and claimed again under a newer epoch.
            #expect(try await queue.ack(leases[1]) == .ok)
            #expect(try await queue.release(leases[2]) == .ok)
            let again = try #require(try await queue.claim(name, workerId: "w2", leaseTTL: held).leases.first)
            #expect(again.taskId == leases[2].taskId && again.epoch == leases[2].epoch + 1)
            // A lease whose task was deleted under it.
            let purged = try QueueName(uniqueQueueName("purged"))
            _ = try await queue.enqueue(purged, payload: "{}")
            let gone = try #require(try await queue.claim(purged, workerId: "w", leaseTTL: held).leases.first)
            _ = try await queue.purge(purged, includeLeased: true)

            let verdicts = try await queue.ack([leases[0], elsewhere, leases[1], leases[2], gone])
            #expect(verdicts == [.ok, .ok, .ok, .lost(.superseded), .lost(.gone)])
            #expect(try await queue.ack([]) == [])
            #expect(try await queue.stats(name).totals.acked == 2)
            #expect(try await queue.stats(name).leased == 1, "the newer lease of the superseded task is still held")
            #expect(try await queue.stats(other).totals.acked == 1)
        }
    }

    @Test("a claim that acks the finished leases first: their verdicts in order, the next tasks, one round trip")
    func ackAndClaim() async throws {
        try await withQueue { queue, name, _ in
            let other = try QueueName(uniqueQueueName("other"))
            for n in 0..<4 { _ = try await queue.enqueue(name, payload: #"{"n":\#(n)}"#) }
            _ = try await queue.enqueue(other, payload: "{}")
            let first = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 2)
            #expect(first.leases.count == 2 && first.acked.isEmpty)
            let elsewhere = try #require(try await queue.claim(other, workerId: "w", leaseTTL: held).leases.first)
            // One of the two is superseded before it is acked: given back and claimed by another worker.
            #expect(try await queue.release(first.leases[1]) == .ok)
            let taken = try #require(try await queue.claim(name, workerId: "w2", leaseTTL: held).leases.first)
            #expect(taken.taskId == first.leases[1].taskId)

            let second = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 5, acking: [first.leases[0], elsewhere, first.leases[1]])
            #expect(second.acked == [.ok, .ok, .lost(.superseded)])
            #expect(second.leases.count == 2, "the two tasks never claimed")
            #expect(Set(second.leases.map(\.taskId)).isDisjoint(with: [first.leases[0].taskId, taken.taskId]))
            // A claim that finds nothing still acks, and a paused queue hands nothing out but acks.
            try await queue.pause(name)
            let third = try await queue.claim(name, workerId: "w", leaseTTL: held, acking: second.leases)
            #expect(third.paused && third.leases.isEmpty && third.acked == [.ok, .ok])
            #expect(try await queue.stats(name).totals.acked == 3)
            #expect(try await queue.stats(other).totals.acked == 1)
            #expect(try await queue.stats(name).leased == 1, "only the other worker's lease is held")
        }
    }

    @Test("an acked task stays readable for the retention, then a later ack or sweep deletes it")
    func completedRetention() async throws {
        var options = TaskQueue.Options()
        options.completedRetention = .milliseconds(300)
        try await withQueue(options: options) { queue, name, _ in
            func finish() async throws -> TaskLease {
                _ = try await queue.enqueue(name, payload: "{}")
                let lease = try #require(try await queue.claim(name, workerId: "w", leaseTTL: held).leases.first)
                #expect(try await queue.ack(lease) == .ok)
                return lease
            }
            let first = try await finish()
            #expect(try await queue.task(name, id: first.taskId)?["state"] == "done")
            #expect(try await queue.ack(first) == .ok, "a retried ack within the retention is recognised")
            // Past the retention, the next ack deletes it; the task just acked stays.
            try await Task.sleep(for: .milliseconds(500))
            let second = try await finish()
            #expect(try await queue.task(name, id: first.taskId) == nil)
            #expect(try await queue.task(name, id: second.taskId)?["state"] == "done")
            // With no more acks, the sweep deletes it.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await queue.sweep(name, interval: .zero).ran)
            #expect(try await queue.task(name, id: second.taskId) == nil)
            #expect(try await queue.stats(name).totals.acked == 2)
        }
    }

    @Test("claims and acks of thousands of tasks in one call each: more members than Lua can unpack at once")
    func largeClaimAndAck() async throws {
        try await withQueue { queue, name, _ in
            let count = 2_500
            for n in 0..<count { _ = try await queue.enqueue(name, payload: #"{"n":\#(n)}"#) }
            let leases = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 10_000).leases
            #expect(leases.count == count)
            #expect(Set(leases.map(\.taskId)).count == count)
            var stats = try await queue.stats(name)
            #expect(stats.leased == count && stats.ready == 0 && stats.oldestReadyAgeMs == nil)
            let verdicts = try await queue.ack(leases)
            #expect(verdicts.filter(\.isOK).count == count)
            stats = try await queue.stats(name)
            #expect(stats.leased == 0 && stats.totals.acked == count && stats.totals.enqueued == count)
        }
    }

    /// Redis' single core is what every worker host shares, so its work per task caps a whole
    /// deployment. Counted as `INFO commandstats` counts: the `EVALSHA` and each command it runs.
    @Test("claiming in batches of 8, each call acking the batch before, costs Redis at most 8 commands per task")
    func commandsPerTask() async throws {
        try await withQueue { queue, name, _ in
            let tasks = 64
            for n in 0..<tasks { _ = try await queue.enqueue(name, payload: #"{"n":\#(n)}"#) }
            try await queue.redis.send(["CONFIG", "RESETSTAT"])
            var done = 0
            var finished: [TaskLease] = []
            repeat {
                let claimed = try await queue.claim(name, workerId: "w", leaseTTL: held, max: 8, acking: finished)
                #expect(claimed.acked.filter(\.isOK).count == finished.count)
                done += finished.count
                finished = claimed.leases
            } while !finished.isEmpty
            #expect(done == tasks)
            let stats = try await queue.redis.send(["INFO", "commandstats"], idempotent: true).string ?? ""
            // The test's own INFO and CONFIG RESETSTAT are not the queue's.
            let calls = RedisInfo.commandCalls(stats).filter { $0.key != "info" && !$0.key.hasPrefix("config") }
            let commands = calls.values.reduce(0, +)
            let byCommand = calls.map { "\($0.key)=\($0.value)" }
            // The count is real: at least one EVALSHA and one HSET per task were seen.
            #expect((calls["evalsha"] ?? 0) >= tasks / 8 && (calls["hset"] ?? 0) >= tasks, "\(byCommand.sorted())")
            let perTask = Double(commands) / Double(tasks)
            #expect(perTask <= 8, "\(perTask) commands per task: \(byCommand.sorted().joined(separator: " "))")
        }
    }
}
