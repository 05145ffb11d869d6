import ArgumentParser
import DroverCore
import DroverDatabase
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverSessionLog
import Foundation

struct ClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Measure the queue and the log on Redis Clusters of 1, 2 and 3 masters, and what a failover loses.",
        discussion: """
            For each size in --masters, a fresh cluster of that many masters (no replicas) on
            loopback, master N pinned to core N modulo the cores (taskset), and in it:
              claim_ack  --tasks tasks spread over --queues queues (each queue is one slot, so
                         queues spread the work over masters) are claimed and acked by --workers
                         workers, --batch at a time, each ack riding on the next claim;
              append     --appenders tasks append --events events, 4 per append, to 64 sessions
                         (spread over the 16 mirror shards), without a recorder.
            Each point's efficiency is its rate over (masters x the 1-master rate) from this run.
            This process drives every master from the same machine: where the masters outnumber
            the cores, the curve shows the machine, not Redis; docs/SCALING.md reads it.

            failover: --failovers times, a fresh cluster of three masters with a replica each
            (cluster-node-timeout 1 s); 8 writers INCR counters in one slot as fast as they can,
            the master is killed with SIGKILL, and the writers go on through the client until the
            replica has taken over. Reported per run: writes the master acknowledged that the new
            master does not have (asynchronous replication's loss), that loss as milliseconds of
            writing, and how long no write succeeded.
            """
    )

    @Option(help: "Cluster sizes to measure, comma-separated.") var masters = "1,2,3"
    @Option(help: "Tasks per claim+ack phase.") var tasks = 20_000
    @Option(help: "Queues the tasks are spread over.") var queues = 12
    @Option(help: "Concurrent workers and appenders.") var workers = 8
    @Option(help: "Tasks per claim call.") var batch = 8
    @Option(help: "Events per append phase.") var events = 40_000
    @Option(help: "Failover runs (0 skips the phase).") var failovers = 3

    func validate() throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ (1...8).contains($0) }) else {
            throw ValidationError("--masters must list sizes from 1 to 8, such as 1,2,3")
        }
        guard tasks > 0, events > 0 else { throw ValidationError("--tasks and --events must be at least 1") }
        guard (1...256).contains(queues) else { throw ValidationError("--queues must be 1 to 256") }
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be 1 to 256") }
        guard (1...1000).contains(batch) else { throw ValidationError("--batch must be 1 to 1000") }
        guard (0...20).contains(failovers) else { throw ValidationError("--failovers must be 0 to 20") }
    }

    private var sizes: [Int] { masters.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() async throws {
        try await reportingErrors {
            let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-cluster-\(getpid())")
            defer { try? FileManager.default.removeItem(at: root) }
            var claimAck: [JSONValue] = []
            var append: [JSONValue] = []
            var baseline: (claim: Double, append: Double)?
            var version = "unknown"
            for size in sizes {
                let cluster = try await LocalRedisCluster.start(
                    in: root.appendingPathComponent("m\(size)"), masters: size, replicasPerMaster: 0, pinMasters: true)
                do {
                    var options = RedisClientOptions()
                    options.poolSize = 2
                    let redis = try await RedisClient.connect(cluster.url, options: options)
                    defer { redis.close() }
                    let info = try await redis.sendToEveryNode(["INFO", "server"]).first?.string ?? ""
                    version = RedisInfo.fields(info)["redis_version"] ?? version
                    let claimed = try await claimAckRate(redis)
                    let appended = try await appendRate(redis, database: root.appendingPathComponent("m\(size).db").path)
                    if baseline == nil { baseline = (claimed, appended) }
                    claimAck.append(point(size, claimed, baseline!.claim))
                    append.append(point(size, appended, baseline!.append))
                } catch {
                    await cluster.shutdown()
                    throw error
                }
                await cluster.shutdown()
            }
            var failoverRuns: [JSONValue] = []
            for run in 0..<failovers {
                failoverRuns.append(try await failover(root.appendingPathComponent("failover\(run)")))
            }
            let report: JSONValue = .object([
                "benchmark": .string("cluster"),
                "redis_version": .string(version),
                "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                "tasks": .number(Double(tasks)), "queues": .number(Double(queues)), "workers": .number(Double(workers)),
                "batch": .number(Double(batch)), "events": .number(Double(events)),
                "claim_ack": .array(claimAck),
                "append": .array(append),
                "failover": failoverSummary(failoverRuns),
            ])
            print(try encodeJSON(report))
        }
    }

    private func point(_ masters: Int, _ rate: Double, _ baseline: Double) -> JSONValue {
        .object([
            "masters": .number(Double(masters)),
            "per_second": .number(rate.rounded()),
            "efficiency": .number(round3(rate / (Double(masters) * baseline))),
        ])
    }

    /// Claim+ack per second over `queues` queues, after enqueueing `tasks` (not timed).
    private func claimAckRate(_ redis: RedisClient) async throws -> Double {
        let queue = TaskQueue(redis: redis)
        let tag = Identifier.make(prefix: "b").suffix(6).lowercased()
        let names = try (0..<queues).map { try QueueName("bench-\(tag)-\($0)") }
        let (tasks, workers, batch) = (self.tasks, self.workers, self.batch)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<workers {
                group.addTask {
                    for n in stride(from: producer, to: tasks, by: workers) {
                        _ = try await queue.enqueue(names[n % names.count], payload: "{\"n\":\(n)}")
                    }
                }
            }
            try await group.waitForAll()
        }
        let clock = ContinuousClock()
        let start = clock.now
        let acked = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var done = 0
                    var finished: [TaskLease] = []
                    var index = worker % names.count
                    var emptyInARow = 0
                    // Each worker keeps to one queue while it has tasks, then moves on; it stops
                    // once a full round of queues came back empty.
                    while emptyInARow < names.count {
                        let claimed = try await queue.claim(
                            names[index], workerId: "bench-\(worker)", leaseTTL: .seconds(60), max: batch, acking: finished)
                        done += claimed.acked.filter(\.isOK).count
                        finished = claimed.leases
                        if finished.isEmpty {
                            emptyInARow += 1
                            index = (index + 1) % names.count
                        } else {
                            emptyInARow = 0
                        }
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        let seconds = (clock.now - start).seconds
        guard acked == tasks else { throw ValidationError("only \(acked) of \(tasks) tasks were acked; the queue is inconsistent") }
        for name in names { _ = try await queue.purge(name, includeLeased: true) }
        return Double(tasks) / seconds
    }

    /// Events appended per second to 64 sessions, 4 per append, without a recorder.
    private func appendRate(_ redis: RedisClient, database path: String) async throws -> Double {
        let log = SessionLog(redis: redis, database: try MirrorDatabase(path: path))
        let ids = (0..<64).map { _ in SessionID.make() }
        for id in ids { try await log.create(id) }
        let body = NewEvent(.agentMessage(AgentMessage(content: [.text(String(repeating: "lorem ipsum ", count: 12))])))
        let (events, appenders) = (self.events, self.workers)
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    var done = 0
                    var round = appender
                    while done < events / appenders {
                        _ = try await log.append(ids[round % ids.count], Array(repeating: body, count: 4))
                        done += 4
                        round += appenders
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double((events / appenders / 4) * 4 * appenders) / (clock.now - start).seconds
    }

    /// One failover under writes, in a cluster of three masters with a replica each (a replica is
    /// promoted by a majority of masters' votes, so one master alone never fails over); what it
    /// lost and how long it refused writes.
    private func failover(_ directory: URL) async throws -> JSONValue {
        let cluster = try await LocalRedisCluster.start(in: directory, masters: 3, replicasPerMaster: 1)
        do {
            let result = try await failover(cluster)
            await cluster.shutdown()
            return result
        } catch {
            await cluster.shutdown()
            throw error
        }
    }

    private func failover(_ cluster: LocalRedisCluster) async throws -> JSONValue {
        var options = RedisClientOptions()
        options.reconnectWindow = .seconds(60)
        let redis = try await RedisClient.connect(cluster.url, options: options)
        defer { redis.close() }
        let master = try await cluster.masterPort(ofSlot: RedisHashSlot.of("{loss}")) ?? cluster.ports[0]
        // Each writer INCRs its own counter. Its acknowledged values rise by one while one master
        // serves them; after a takeover that lost writes, the next value is lower than the last.
        struct Writer: Sendable {
            var lost: Int64 = 0
            var writesBeforeKill = 0
            /// The longest wait between two acknowledged writes once the kill was under way.
            var longestGap: Duration = .zero
        }
        let killedAt = Locked<ContinuousClock.Instant?>(nil)
        let stop = Locked(false)
        let clock = ContinuousClock()
        let started = clock.now
        let writers = (0..<8).map { index in
            Task { () -> Writer in
                var writer = Writer()
                var last: Int64 = 0
                var lastAt = clock.now
                while !stop.withLock({ $0 }) {
                    guard let value = (try? await redis.send(["INCR", "{loss}:w\(index)"]))?.int else { continue }
                    if value <= last { writer.lost += last - (value - 1) }
                    last = value
                    let now = clock.now
                    if killedAt.withLock({ $0 }) == nil {
                        writer.writesBeforeKill += 1
                    } else {
                        writer.longestGap = max(writer.longestGap, now - lastAt)
                    }
                    lastAt = now
                }
                return writer
            }
        }
        try await Task.sleep(for: .seconds(1))
        let kill = clock.now
        killedAt.withLock { $0 = kill }
        await cluster.kill(port: master)
        // Writes go on until the replica has taken over, then a little longer.
        guard try await cluster.waitUntilServing(slot: RedisHashSlot.of("{loss}")) else {
            throw ValidationError("no replica took over the killed master within 90 s; see the logs under \(cluster.directory.path)")
        }
        try await Task.sleep(for: .milliseconds(300))
        stop.withLock { $0 = true }
        var results: [Writer] = []
        for writer in writers { results.append(await writer.value) }
        let lost = results.reduce(Int64(0)) { $0 + $1.lost }
        let rate = Double(results.reduce(0) { $0 + $1.writesBeforeKill }) / (kill - started).seconds
        let unavailable = results.map(\.longestGap).max() ?? .zero
        return .object([
            "writes_per_second": .number(rate.rounded()),
            "acknowledged_writes_lost": .number(Double(lost)),
            "loss_window_ms": .number(round3(Double(lost) / rate * 1000)),
            "unavailable_ms": .number((unavailable.seconds * 1000).rounded()),
        ])
    }

    private func failoverSummary(_ runs: [JSONValue]) -> JSONValue {
        func values(_ field: String) -> [Double] { runs.compactMap { $0.objectValue?[field]?.doubleValue }.sorted() }
        func median(_ field: String) -> JSONValue {
            let sorted = values(field)
            return sorted.isEmpty ? .null : .number(round3(percentile(sorted, 50)))
        }
        return .object([
            "runs": .array(runs),
            "median_acknowledged_writes_lost": median("acknowledged_writes_lost"),
            "median_loss_window_ms": median("loss_window_ms"),
            "median_unavailable_ms": median("unavailable_ms"),
            "max_loss_window_ms": values("loss_window_ms").last.map { .number($0) } ?? .null,
        ])
    }
}
