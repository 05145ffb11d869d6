import DroverBrain
import DroverCore
import DroverDatabase
import DroverQueue
import DroverRedis
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@testable import DroverSchedule

/// Deployments on a real SQLite file and schedulers on a real redis-server, with their own
/// connections, over a simulated clock.
struct SchedulerRig {
    let server: RedisServerFixture
    let databasePath: String
    let clock: ManualSchedulerClock
    let store: DeploymentStore
    let redis: RedisClient

    static let start = ISO8601DateFormatter().date(from: "2026-11-25T10:00:30Z")!

    static func file(name: String = "every-minute", expression: String = "* * * * *", jitter: Int = 0) throws -> ScheduleFile {
        try ScheduleFile.parse(
            """
            name: \(name)
            agent: {model: claude-sonnet-4-5, system: Be brief.}
            initial_events:
              - type: user.message
                content: [{type: text, text: "what changed?"}]
            schedule: {type: cron, expression: "\(expression)", timezone: UTC}
            jitter_seconds: \(jitter)
            """, file: "Schedules/\(name).yaml")
    }

    static func with<T>(_ files: [ScheduleFile]? = nil, _ body: (SchedulerRig) async throws -> T) async throws -> T {
        try await withRedisServer { server in
            let path = temporaryDatabasePath()
            defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
            let clock = ManualSchedulerClock(start)
            let store = DeploymentStore(database: try MirrorDatabase(path: path))
            _ = try await store.apply(try files ?? [file()], now: start)
            let redis = try await server.client()
            defer { redis.close() }
            return try await body(SchedulerRig(server: server, databasePath: path, clock: clock, store: store, redis: redis))
        }
    }

    /// A scheduler as another process would have it: its own Redis client and SQLite handle.
    /// The default TTL is long: tests with one scheduler are not about the lead, and a frozen
    /// test process must not make its lock lapse mid-tick.
    func scheduler(
        _ token: String, lockTTL: Duration = .seconds(30),
        faultPoint: (@Sendable (String) throws -> Void)? = nil
    ) async throws -> (Scheduler, RedisClient) {
        let redis = try await server.client(poolSize: 2)
        let database = try MirrorDatabase(path: databasePath)
        let store = DeploymentStore(database: database)
        var options = Scheduler.Options()
        options.token = token
        options.tick = .milliseconds(20)
        options.lockTTL = lockTTL
        var firer = DeploymentFirer(store: store, sessionLog: SessionLog(redis: redis, database: database), queue: TaskQueue(redis: redis))
        firer.faultPoint = faultPoint
        return (Scheduler(redis: redis, store: store, firer: firer, clock: clock, options: options), redis)
    }

    /// The scheduler that holds the leader lock in Redis, and its epoch. Under load the short
    /// test lock can lapse between renewals with no one holding it for a moment: waits (real
    /// time, generously) for a holder rather than reading that moment as a failure.
    func lockHolder(_ schedulers: [Scheduler]) async throws -> (index: Int, epoch: Int64) {
        let deadline = ContinuousClock.now + .seconds(60)
        var held = try await redis.send(["GET", "drover:{sched}:leader"]).string
        while held == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            held = try await redis.send(["GET", "drover:{sched}:leader"]).string
        }
        let value = try #require(held, "no scheduler holds the lock")
        let parts = value.split(separator: "|").map(String.init)
        let index = try #require(schedulers.firstIndex { $0.options.token == parts.first }, "unknown holder \(value)")
        return (index, try #require(Int64(parts.last ?? "")))
    }

    func counts(_ name: String = "every-minute") async throws -> [String: Int] {
        try await store.database.deploymentRunCounts(deploymentID: try await store.find(name).id)
    }

    /// Waits (real time) until the run for `occurrence` is recorded. Generous: with an 800 ms
    /// lock and the whole suite running beside it, the lead can pass several times before a fire
    /// lands (seen: epoch 10 and no run for minute 2 after 10 s).
    func waitForRun(_ occurrence: Date, timeout: Duration = .seconds(60)) async throws {
        let key = Timestamp.seconds(occurrence)
        let deadline = ContinuousClock.now + timeout
        while try await counts()[key] == nil {
            guard ContinuousClock.now < deadline else {
                Issue.record("no run for \(key) within \(timeout)")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

func minute(_ n: Int) -> Date { ISO8601DateFormatter().date(from: "2026-11-25T10:00:00Z")! + Double(n * 60) }

@Suite("Scheduler")
struct SchedulerTests {
    @Test("three schedulers fire each occurrence exactly once, into a real session and turn task")
    func threeSchedulers() async throws {
        try await SchedulerRig.with { rig in
            var schedulers: [(Scheduler, RedisClient)] = []
            for index in 0..<3 { schedulers.append(try await rig.scheduler("schd_\(index)", lockTTL: .seconds(1))) }
            defer { for (_, redis) in schedulers { redis.close() } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (scheduler, _) in schedulers { group.addTask { try await scheduler.run() } }
                for n in 1...12 {
                    rig.clock.set(minute(n) + 1)
                    try await rig.waitForRun(minute(n))
                    // The run row is written before the fire commits, and on a loaded machine the
                    // lead can pass mid-fire (the commit is refused; the next leader redoes the
                    // fire onto the same session and commits it). Move the clock on only once
                    // occurrence n is committed, so each step checks one occurrence.
                    let deadline = ContinuousClock.now + .seconds(30)
                    while schedulers.map(\.0.fires).reduce(0, +) < n, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                // A few more ticks at the same instant must add nothing.
                try await Task.sleep(for: .milliseconds(150))
                group.cancelAll()
            }
            // The clock stood at minute 12 + 1 s from the last step on, so exactly 12 occurrences
            // were due. The runs table holds one row per (deployment, occurrence) (UNIQUE), so
            // the fire counts are what shows a double fire. On a loaded machine the lead may
            // pass between schedulers (a leader that misses its 1 s TTL); that is fine, as long
            // as each occurrence is committed once in all.
            let counts = try await rig.counts()
            #expect(counts == Dictionary(uniqueKeysWithValues: (1...12).map { (Timestamp.seconds(minute($0)), 1) }))
            #expect(schedulers.map(\.0.fires).reduce(0, +) == 12, "fires per scheduler: \(schedulers.map(\.0.fires))")

            // Each run made a session with the agent snapshot and the initial event, and a turn task.
            let runs = try await rig.store.runs("every-minute")
            #expect(runs.count == 12)
            #expect(Set(runs.compactMap { $0.objectValue?["session_id"]?.stringValue }).count == 12)
            let log = SessionLog(redis: rig.redis, database: rig.store.database)
            for run in runs {
                let session = try SessionID(run.objectValue?["session_id"]?.stringValue ?? "")
                let events = try await log.read(session)
                #expect(events.map(\.type) == ["user.message"])
                #expect(try await log.agentJSON(session)?.contains("claude-sonnet-4-5") == true)
                #expect(run.objectValue?["trigger_context"]?.objectValue?["type"]?.stringValue == "schedule")
                // Visible to the API under /v1/sessions, with the deployment it came from.
                let indexed = try await ControlPlaneStore(database: rig.store.database).find(
                    .sessions, id: session.rawValue, workspace: "wrkspc_default")
                #expect(indexed?.resource.contains(#""deployment_id":""#) == true)
            }
            let stats = try await TaskQueue(redis: rig.redis).stats(TurnQueue.defaultName)
            #expect(stats.ready == 12)
        }
    }

    @Test("a killed leader's lock expires, another takes over without double firing, and the stale leader is refused")
    func leaderKilled() async throws {
        try await SchedulerRig.with { rig in
            var schedulers: [(Scheduler, RedisClient)] = []
            // Long enough that a loaded machine cannot hold the successor back past it between two
            // renewals (which would hand the lead back to the old leader), short enough to wait out.
            for index in 0..<3 { schedulers.append(try await rig.scheduler("schd_\(index)", lockTTL: .seconds(3))) }
            defer { for (_, redis) in schedulers { redis.close() } }
            // Tick loops the test can kill outright: a killed scheduler releases nothing.
            let loops = schedulers.map { scheduler, _ in
                Task {
                    while !Task.isCancelled {
                        _ = try? await scheduler.tick()
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
            for n in 1...3 {
                rig.clock.set(minute(n) + 1)
                try await rig.waitForRun(minute(n))
            }
            // Kill whoever holds the lock in Redis now (under load the lead may have moved).
            let (leaderIndex, oldEpoch) = try await rig.lockHolder(schedulers.map(\.0))
            let leader = schedulers[leaderIndex].0
            loops[leaderIndex].cancel()
            _ = await loops[leaderIndex].result
            // No one may lead while the dead leader's lock is still in Redis: Redis' own clock
            // decides when it lapses. Each look reads the runs before the lock, so a run seen
            // while the old lock is still held was made under it.
            let deadLock = "\(schedulers[leaderIndex].0.options.token)|\(oldEpoch)"
            rig.clock.set(minute(4) + 1)
            let lapsed = try await eventually(within: .seconds(60), polling: .milliseconds(2)) {
                let fired = try await rig.counts()[Timestamp.seconds(minute(4))] != nil
                let held = try await rig.redis.send(["GET", "drover:{sched}:leader"]).string
                if held == deadLock { #expect(!fired, "minute 4 fired while the dead leader's lock was still in Redis") }
                return held != deadLock
            }
            #expect(lapsed, "the dead leader's lock never lapsed")
            try await rig.waitForRun(minute(4))
            for n in 5...6 {
                rig.clock.set(minute(n) + 1)
                try await rig.waitForRun(minute(n))
            }
            let (successorIndex, newEpoch) = try await rig.lockHolder(schedulers.map(\.0))
            #expect(successorIndex != leaderIndex)
            #expect(newEpoch > oldEpoch)

            // The old leader wakes up and tries to fire with its old fence: refused.
            let deployment = try await rig.store.find("every-minute").id
            let stale = try await leader.lock.begin(deployment: deployment, occurrence: Int64(minute(7).timeIntervalSince1970), epoch: oldEpoch)
            guard case .stale(let current) = stale else {
                Issue.record("a stale leader's fire was not refused: \(stale)")
                return
            }
            #expect(current > oldEpoch)
            let late = try await leader.tick()
            #expect(late.isEmpty, "the old leader fired \(late)")

            for loop in loops { loop.cancel() }
            for loop in loops { _ = await loop.result }
            let counts = try await rig.counts()
            #expect(counts == Dictionary(uniqueKeysWithValues: (1...6).map { (Timestamp.seconds(minute($0)), 1) }))
        }
    }

    @Test("after downtime a missed stretch fires once, for its latest occurrence")
    func missedOccurrenceOnce() async throws {
        try await SchedulerRig.with { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            rig.clock.set(minute(1) + 5)
            #expect(try await scheduler.tick().map(\.scheduledAt) == [minute(1)])
            rig.clock.set(minute(31) + 5)  // 30 minutes down
            #expect(try await scheduler.tick().map(\.scheduledAt) == [minute(31)])
            #expect(try await scheduler.tick().isEmpty)
            #expect(try await rig.counts().keys.sorted() == [Timestamp.seconds(minute(1)), Timestamp.seconds(minute(31))])
            let row = try await rig.store.find("every-minute")
            #expect(row.lastRunAt != nil)
        }
    }

    struct InjectedFault: Error {}

    @Test("a fire that fails partway is completed by the next tick, before any later occurrence")
    func failedFireIsCompleted() async throws {
        try await SchedulerRig.with { rig in
            let failing = Locked(true)
            let (scheduler, redis) = try await rig.scheduler("schd_solo") { step in if step == "enqueued", failing.value { throw InjectedFault() } }
            defer { redis.close() }
            let first = Int64(minute(1).timeIntervalSince1970)
            rig.clock.set(minute(1) + 5)
            #expect(try await scheduler.tick().isEmpty, "the fire failed after enqueueing its turn")
            #expect(try await rig.counts().isEmpty, "and before recording its run")
            #expect(try await scheduler.lock.pending().values.sorted() == [first])
            rig.clock.set(minute(3) + 5)
            #expect(try await scheduler.tick().isEmpty, "while minute 1 fails, nothing later fires ahead of it")

            failing.withLock { $0 = false }
            #expect(try await scheduler.tick().map(\.scheduledAt) == [minute(1), minute(3)], "minute 1 is completed, then the latest due")
            #expect(try await scheduler.tick().isEmpty)
            #expect(try await rig.counts().keys.sorted() == [Timestamp.seconds(minute(1)), Timestamp.seconds(minute(3))])
            #expect(try await scheduler.lock.pending().isEmpty)
            // Redone onto the same session and turn task: nothing twice.
            let log = SessionLog(redis: rig.redis, database: rig.store.database)
            for run in try await rig.store.runs("every-minute") {
                let session = try SessionID(run.objectValue?["session_id"]?.stringValue ?? "")
                #expect(try await log.read(session).map(\.type) == ["user.message"])
            }
            #expect(try await TaskQueue(redis: rig.redis).stats(TurnQueue.defaultName).ready == 2)
        }
    }

    @Test(
        "a fire that failed partway before a pause: completed after it if it had started its session, else dropped",
        arguments: ["enqueued", "start"])
    func failedFireThenPaused(step: String) async throws {
        try await SchedulerRig.with { rig in
            let failing = Locked(true)
            let (scheduler, redis) = try await rig.scheduler("schd_solo") { at in if at == step, failing.value { throw InjectedFault() } }
            defer { redis.close() }
            rig.clock.set(minute(1) + 5)
            #expect(try await scheduler.tick().isEmpty)
            _ = try await rig.store.pause("every-minute", now: rig.clock.now())
            failing.withLock { $0 = false }
            rig.clock.set(minute(2) + 5)
            #expect(try await scheduler.tick().isEmpty)
            _ = try await rig.store.unpause("every-minute", now: rig.clock.now())
            rig.clock.set(minute(3) + 5)
            // Failed after enqueueing, minute 1's turn was on its way: its run is recorded now.
            // Failed before writing anything, it is a slot that fell in the pause.
            let expected = step == "enqueued" ? [minute(1), minute(3)] : [minute(3)]
            #expect(try await scheduler.tick().map(\.scheduledAt) == expected)
            #expect(try await rig.counts().keys.sorted() == expected.map(Timestamp.seconds))
            #expect(try await scheduler.lock.pending().isEmpty)
        }
    }

    /// Points the deployment at a stored environment by id, as an API deployment's `environment_id`.
    func useStoredEnvironment(_ rig: SchedulerRig, config: String) async throws -> (ControlPlaneStore, DeploymentRow) {
        var row = try await rig.store.find("every-minute")
        let control = ControlPlaneStore(database: rig.store.database)
        try await control.insert(
            .environments,
            .init(
                id: "env_research", workspace: row.workspaceID, createdAt: "2026-11-25T09:00:00Z",
                resource: #"{"type":"environment","id":"env_research","name":"research","config":\#(config)}"#))
        var spec = try #require(decodeSpec(row.spec))
        spec.environment = .object(["id": .string("env_research")])
        row.spec = spec.encoded
        try await rig.store.database.saveDeployment(row)
        return (control, row)
    }

    @Test("a deployment runs in its environment by id; once that is archived, a fire records a failed run and pauses it")
    func archivedEnvironmentPausesTheDeployment() async throws {
        try await SchedulerRig.with { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            let config = #"{"packages":{"pip":["pytest"]},"type":"cloud"}"#
            let (control, row) = try await useStoredEnvironment(rig, config: config)
            rig.clock.set(minute(1) + 5)
            let fired = try await scheduler.tick()
            #expect(fired.map(\.scheduledAt) == [minute(1)])
            let log = SessionLog(redis: rig.redis, database: rig.store.database)
            #expect(try await log.environmentJSON(SessionID(fired.first?.sessionID ?? "")) == config, "the session gets the environment's config")

            try await control.update(.environments, id: "env_research", workspace: row.workspaceID, resource: nil, archivedAt: "2026-11-25T10:01:30Z")
            rig.clock.set(minute(2) + 5)
            #expect(try await scheduler.tick().map(\.scheduledAt) == [minute(2)], "the occurrence is fired once, as a failed run")
            let failed = try #require(try await rig.store.runs("every-minute").first?.objectValue)
            #expect(failed["session_id"] == .null)
            #expect(failed["error"]?.objectValue?["type"]?.stringValue == "environment_archived_error")
            let paused = try await rig.store.find("every-minute")
            #expect(paused.status == "paused")
            #expect(
                rig.store.resource(paused).objectValue?["paused_reason"]
                    == .object(["type": .string("error"), "error": .object(["type": .string("environment_archived_error")])]))
            rig.clock.set(minute(3) + 5)
            #expect(try await scheduler.tick().isEmpty, "paused: nothing more fires, and no failed run piles up")
            #expect(try await rig.store.runs("every-minute").count == 2)
            #expect(try await scheduler.lock.pending().isEmpty)

            let unpaused = try await rig.store.unpause("every-minute", now: rig.clock.now())
            #expect(rig.store.resource(unpaused).objectValue?["paused_reason"] == .null)
            _ = try await rig.store.pause("every-minute", now: rig.clock.now())
            #expect(
                rig.store.resource(try await rig.store.find("every-minute")).objectValue?["paused_reason"] == .object(["type": .string("manual")]))
        }
    }

    @Test("a deployment whose agent was archived records agent_archived_error and pauses")
    func archivedAgentPausesTheDeployment() async throws {
        try await SchedulerRig.with { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            let row = try await rig.store.find("every-minute")
            let spec = try #require(decodeSpec(row.spec))
            try await ControlPlaneStore(database: rig.store.database).update(
                .agents, id: spec.agentID, workspace: row.workspaceID, resource: nil, archivedAt: "2026-11-25T10:00:40Z")
            rig.clock.set(minute(1) + 5)
            #expect(try await scheduler.tick().map(\.sessionID) == [""])
            #expect(
                try await rig.store.runs("every-minute").first?.objectValue?["error"]?.objectValue?["type"]?.stringValue == "agent_archived_error")
            #expect(try await rig.store.find("every-minute").status == "paused")
        }
    }

    @Test("a paused deployment does not fire, and unpausing owes nothing for the pause")
    func paused() async throws {
        try await SchedulerRig.with { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            _ = try await rig.store.pause("every-minute", now: rig.clock.now())
            for n in 1...3 {
                rig.clock.set(minute(n) + 5)
                #expect(try await scheduler.tick().isEmpty)
            }
            _ = try await rig.store.unpause("every-minute", now: rig.clock.now())
            #expect(try await scheduler.tick().isEmpty, "minute 3 fell in the pause")
            rig.clock.set(minute(4) + 5)
            #expect(try await scheduler.tick().map(\.scheduledAt) == [minute(4)])
            #expect(try await rig.counts().count == 1)
        }
    }

    @Test("jitter delays each deployment's fire by the same amount every time")
    func jitter() async throws {
        let file = try SchedulerRig.file(expression: "*/5 * * * *", jitter: 240)
        try await SchedulerRig.with([file]) { rig in
            let (scheduler, redis) = try await rig.scheduler("schd_solo")
            defer { redis.close() }
            let id = try await rig.store.find("every-minute").id
            let delay = DeploymentSpec.jitter(deploymentID: id, maximum: 240)
            #expect(delay == DeploymentSpec.jitter(deploymentID: id, maximum: 240))
            #expect((0...240).contains(delay))
            for occurrence in [minute(5), minute(10)] {
                if delay > 0 {
                    rig.clock.set(occurrence + Double(delay) - 1)
                    #expect(try await scheduler.tick().isEmpty)
                }
                rig.clock.set(occurrence + Double(delay))
                #expect(try await scheduler.tick().map(\.scheduledAt) == [occurrence])
            }
            // Different deployments spread out.
            let spread = Set((0..<20).map { DeploymentSpec.jitter(deploymentID: "depl_\($0)", maximum: 240) })
            #expect(spread.count > 10)
        }
    }
}

@Suite("Job deployments")
struct JobDeploymentTests {
    static func file(_ overlap: String) throws -> ScheduleFile {
        try ScheduleFile.parse(
            "name: digest-\(overlap)\njob: ../Jobs/wiki-digest.yaml\noverlap: \(overlap)\nschedule: {type: cron, expression: \"* * * * *\", timezone: UTC}\n",
            file: projectRoot.appendingPathComponent("Schedules/digest.yaml").path)
    }

    @Test("a job deployment's fire starts one batch per occurrence, once; overlap skip records a skip, queue defers, allow starts beside")
    func overlap() async throws {
        try await SchedulerRig.with([try Self.file("skip"), try Self.file("queue"), try Self.file("allow")]) { rig in
            let launches = Locked<[String]>([])
            var firer = DeploymentFirer(
                store: rig.store, sessionLog: SessionLog(redis: rig.redis, database: rig.store.database), queue: TaskQueue(redis: rig.redis))
            firer.launchBatch = { launch in launches.withLock { $0.append(launch.batchId) } }
            func fire(_ policy: String, _ n: Int) async throws -> [String: JSONValue] {
                try await firer.fire(try await rig.store.find("digest-\(policy)"), scheduledAt: minute(n), now: minute(n)).objectValue ?? [:]
            }
            // A run holds the batch's lock while it runs; then it records the batch completed.
            func hold(_ batch: String) async throws {
                _ = try await rig.redis.send(["SET", "drover:batch:\(batch):lock", "elsewhere:1", "PX", "60000"])
            }
            func finish(_ batch: String) async throws {
                _ = try await rig.redis.send(["DEL", "drover:batch:\(batch):lock"])
                try await rig.store.database.saveBatch(id: batch, name: "wiki-digest", jobFile: "x", status: "completed", resource: "{}")
            }

            for policy in ["skip", "queue", "allow"] {
                let first = try await fire(policy, 1)
                let batch = try #require(first["batch_id"]?.stringValue)
                #expect(batch.hasPrefix("batch_wiki_digest_20261125t1001_") && first["session_id"] == .null && first["error"] == .null)
                try await hold(batch)
                // The same occurrence fired again (a redone fire) starts nothing new.
                #expect(try await fire(policy, 1)["batch_id"]?.stringValue == batch)
                #expect(launches.value.filter { $0 == batch }.count == 1, "\(launches.value)")

                switch policy {
                case "skip":
                    let skipped = try await fire(policy, 2)
                    #expect(skipped["batch_id"] == .null && skipped["error"]?.objectValue?["type"] == .string("overlap_skipped"), "\(skipped)")
                    #expect(skipped["error"]?.objectValue?["message"]?.stringValue?.contains(batch) == true)
                case "queue":
                    await #expect(throws: DeploymentFirer.Deferred.self) { _ = try await fire(policy, 2) }
                    try await finish(batch)
                    let second = try await fire(policy, 2)
                    #expect(second["batch_id"]?.stringValue?.hasSuffix(String(batch.suffix(5))) == true && second["batch_id"]?.stringValue != batch)
                default:
                    let beside = try await fire(policy, 2)
                    #expect(beside["batch_id"]?.stringValue != nil && beside["batch_id"]?.stringValue != batch, "\(beside)")
                }
            }
            // Two deployments of one job, one minute: two batches.
            #expect(Set(launches.value).count == launches.value.count, "\(launches.value)")
            // Through the scheduler: a skip is recorded, and does not pause the deployment as a
            // run error that retrying cannot fix does.
            rig.clock.set(minute(3) + 1)
            let scheduler = Scheduler(redis: rig.redis, store: rig.store, firer: firer, clock: rig.clock)
            _ = try await scheduler.tick()
            let runs = try await rig.store.runs("digest-skip").compactMap(\.objectValue)
            #expect(runs.filter { $0["error"]?.objectValue?["type"] == .string("overlap_skipped") }.count == 2, "\(runs)")
            #expect(try await rig.store.find("digest-skip").status == "active")
            await scheduler.stepDown()
        }
    }
}
