import ArgumentParser
import DroverCore
import DroverQueue
import DroverRedis
import DroverRuntime
import Foundation

/// `drover bench ...`: its own module, so the benchmarks do not live among the commands users run.
public struct BenchCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print JSON. Run them on a release build (`drover bench ...` through the scripts/setup link builds one).",
        subcommands: [
            QueueBench.self, LogBench.self, TTFTBench.self, HandsBench.self, MCPBench.self, APIBench.self, BatchBench.self, ContextBench.self,
            EgressBench.self, MetricsBench.self, SelfHostedBench.self, ClusterBench.self, ThreadsBench.self,
        ]
    )
}

struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Measure enqueue/s, claim+ack/s and the idle claim latency of the task queue.",
        discussion: """
            Phases, in one run against the same server:
              redis_set   redis-benchmark -c --workers -t set: one round trip per operation, the
                          ceiling claim_ack is compared with (redis_set_ratio);
              enqueue     --workers producers queue --tasks tasks, each enqueue one round trip;
              claim_ack   --workers workers claim up to --batch at a time, and ack them in the
                          call that claims the next batch (one round trip per batch);
              idle_claim  --workers consumers wait (BZPOPMIN) on an empty queue; one task at a
                          time is queued and the time from enqueue to claim is recorded.
            enqueue and claim_ack report the Redis commands and server CPU they cost per task, from
            INFO commandstats and INFO cpu before and after.
            With DROVER_REDIS_URL unset it uses a fresh embedded redis-server (AOF everysec, unix
            socket) in a temporary directory, so it leaves nothing behind.
            """
    )

    @Option(help: "Tasks to enqueue and then claim and ack.")
    var tasks = 20_000

    @Option(help: "Concurrent producers and workers.")
    var workers = 4

    @Option(help: "Tasks claimed per claim call in the claim+ack phase.")
    var batch = 8

    @Option(help: "Samples of idle claim latency.")
    var idleSamples = 300

    @Option(help: "on: record metrics and scrape them every second, as a served process does; off: no metrics.")
    var metrics = BenchMetrics.on

    func validate() throws {
        guard tasks > 0 else { throw ValidationError("--tasks must be at least 1") }
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be 1 to 256") }
        guard (1...1000).contains(batch) else { throw ValidationError("--batch must be 1 to 1000") }
        guard idleSamples > 0 else { throw ValidationError("--idle-samples must be at least 1") }
    }

    func run() async throws {
        try await reportingErrors {
            let configuration = try DroverConfiguration.fromEnvironment()
            var options = RedisClientOptions()
            options.poolSize = workers * 2 + 2
            var embedded: EmbeddedRedis?
            var scratch: URL?
            let url: RedisURL
            if let text = configuration.redisURL {
                url = try RedisURL(parsing: text)
            } else {
                let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-\(getpid())")
                scratch = directory
                embedded = try await EmbeddedRedis.start(EmbeddedRedis.Options(dataDirectory: directory))
                url = embedded!.url
            }
            let redis = try await RedisClient.connect(url, options: options)
            defer { redis.close() }
            let (_, scraper) = metrics.start(redis: redis)
            defer { scraper?.cancel() }
            do {
                let report = try await measure(
                    redis: redis, url: url, target: embedded == nil ? url.description : "embedded redis-server, unix socket, AOF everysec")
                print(try encodeJSON(report))
            } catch {
                await embedded?.stop(force: true)
                throw error
            }
            await embedded?.stop(force: true)
            if let scratch { try? FileManager.default.removeItem(at: scratch) }
        }
    }

    struct Report: Encodable {
        let benchmark = "queue"
        let redis: String
        let redisVersion: String
        let cores: Int
        let tasks: Int
        let workers: Int
        let batch: Int
        let redisSet: RedisSetBaseline.Result
        let enqueue: Throughput
        let claimAck: Throughput
        /// claim_ack per second over redis_set per second, measured in this run.
        let redisSetRatio: Double?
        let idleClaimLatencyMs: Latency

        enum CodingKeys: String, CodingKey {
            case benchmark, redis, cores, tasks, workers, batch, enqueue
            case redisVersion = "redis_version"
            case redisSet = "redis_set"
            case claimAck = "claim_ack"
            case redisSetRatio = "redis_set_ratio"
            case idleClaimLatencyMs = "idle_claim_latency_ms"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(benchmark, forKey: .benchmark)
            try container.encode(redis, forKey: .redis)
            try container.encode(redisVersion, forKey: .redisVersion)
            try container.encode(cores, forKey: .cores)
            try container.encode(tasks, forKey: .tasks)
            try container.encode(workers, forKey: .workers)
            try container.encode(batch, forKey: .batch)
            try container.encode(redisSet, forKey: .redisSet)
            try container.encode(enqueue, forKey: .enqueue)
            try container.encode(claimAck, forKey: .claimAck)
            // null, not absent, when redis-benchmark gave no figure (redis_set.skipped says why).
            try container.encode(redisSetRatio, forKey: .redisSetRatio)
            try container.encode(idleClaimLatencyMs, forKey: .idleClaimLatencyMs)
        }
    }

    struct Throughput: Encodable {
        let operations: Int
        let seconds: Double
        let perSecond: Double
        let redisWork: RedisWork

        enum CodingKeys: String, CodingKey {
            case operations, seconds
            case perSecond = "per_second"
            case redisWork = "redis_work"
        }
    }

    struct Latency: Encodable {
        let samples: Int
        let p50: Double
        let p90: Double
        let p99: Double
        let max: Double
    }

    private func measure(redis: RedisClient, url: RedisURL, target: String) async throws -> Report {
        let queue = TaskQueue(redis: redis)
        let name = try QueueName("bench-\(Identifier.make(prefix: "b").suffix(8).lowercased())")
        let info = try await redis.send(["INFO", "server"], idempotent: true).string ?? ""
        let version = RedisInfo.fields(info)["redis_version"] ?? "unknown"
        let clock = ContinuousClock()
        let (tasks, workers, batch) = (self.tasks, self.workers, self.batch)
        let meter = RedisWorkMeter(redis: redis)

        let redisSet = await RedisSetBaseline.measure(url: url, clients: workers, requests: max(tasks, 50_000))
        try await redis.send(["DEL", RedisSetBaseline.key])

        // Enqueue.
        let beforeEnqueue = try await meter.read()
        let enqueueStart = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<workers {
                group.addTask {
                    for n in stride(from: producer, to: tasks, by: workers) {
                        _ = try await queue.enqueue(name, payload: "{\"n\":\(n)}")
                    }
                }
            }
            try await group.waitForAll()
        }
        let enqueueSeconds = (clock.now - enqueueStart).seconds
        let enqueueWork = RedisWorkMeter.work(from: beforeEnqueue, to: try await meter.read(), tasks: tasks)

        // Claim and ack.
        let beforeClaim = try await meter.read()
        let claimStart = clock.now
        let acked = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var done = 0
                    var finished: [TaskLease] = []
                    while true {
                        // Each call acks the batch before and claims the next, as a worker does.
                        let claimed = try await queue.claim(
                            name, workerId: "bench-\(worker)", leaseTTL: .seconds(60), max: batch, acking: finished)
                        done += claimed.acked.filter(\.isOK).count
                        finished = claimed.leases
                        if finished.isEmpty { return done }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        let claimSeconds = (clock.now - claimStart).seconds
        let claimWork = RedisWorkMeter.work(from: beforeClaim, to: try await meter.read(), tasks: tasks)
        guard acked == tasks else {
            throw ValidationError("only \(acked) of \(tasks) tasks were acked; the queue is inconsistent")
        }

        // Idle claim latency: consumers block in BZPOPMIN; one task at a time.
        let latencies = try await idleLatencies(queue: queue, name: name)

        try await deleteQueue(redis: redis, name: name)
        let claimAck = Throughput(operations: tasks, seconds: claimSeconds, perSecond: Double(tasks) / claimSeconds, redisWork: claimWork)
        return Report(
            redis: target, redisVersion: version, cores: ProcessInfo.processInfo.activeProcessorCount,
            tasks: tasks, workers: workers, batch: batch, redisSet: redisSet,
            enqueue: Throughput(operations: tasks, seconds: enqueueSeconds, perSecond: Double(tasks) / enqueueSeconds, redisWork: enqueueWork),
            claimAck: claimAck,
            redisSetRatio: redisSet.perSecond.map { round3(claimAck.perSecond / $0) },
            idleClaimLatencyMs: latencies
        )
    }

    private func idleLatencies(queue: TaskQueue, name: QueueName) async throws -> Latency {
        let samples = idleSamples
        let origin = ContinuousClock.now
        let consumers = (0..<workers).map { queue.consumer(name, workerId: "idle-\($0)") }
        defer { consumers.forEach { $0.close() } }
        let results = try await withThrowingTaskGroup(of: [Double].self) { group in
            for consumer in consumers {
                group.addTask {
                    var seen: [Double] = []
                    while true {
                        let leases = try await consumer.next(leaseTTL: .seconds(60), wait: .seconds(5))
                        if leases.isEmpty { return seen }
                        for lease in leases {
                            let received = (ContinuousClock.now - origin).seconds * 1000
                            if case .number(let sent)? = try? JSONValue.parse(lease.payload).objectValue?["sent_ms"] {
                                if sent < 0 { return seen }
                                seen.append(received - sent)
                            }
                            _ = try await queue.ack(lease)
                        }
                    }
                }
            }
            // Let every consumer reach its blocking wait before the first sample.
            try await Task.sleep(for: .milliseconds(200))
            for _ in 0..<samples {
                let sent = (ContinuousClock.now - origin).seconds * 1000
                _ = try await queue.enqueue(name, payload: "{\"sent_ms\":\(sent)}")
                try await Task.sleep(for: .milliseconds(5))
            }
            for _ in consumers { _ = try await queue.enqueue(name, payload: "{\"sent_ms\":-1}") }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }
        let sorted = results.sorted()
        func percentile(_ p: Double) -> Double { round3(DroverBench.percentile(sorted, p)) }
        return Latency(samples: sorted.count, p50: percentile(50), p90: percentile(90), p99: percentile(99), max: percentile(100))
    }

    private func deleteQueue(redis: RedisClient, name: QueueName) async throws {
        // One tag, so one slot: the keys can go in one UNLINK on a cluster too.
        let keys = try await redis.scanKeys(matching: "drover:{q:\(name.rawValue)}:*", count: 5000)
        for chunk in stride(from: 0, to: keys.count, by: 1000) {
            try await redis.send(["UNLINK"] + keys[chunk..<min(chunk + 1000, keys.count)])
        }
    }
}
