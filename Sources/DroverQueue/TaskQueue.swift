import DroverCore
import DroverMetrics
import DroverRedis
import Foundation

/// A Redis task queue with fenced leases, in the manner of SQS visibility timeouts: a claimed task
/// is invisible until its lease deadline, and comes back if the lease is not renewed.
public struct TaskQueue: Sendable {
    public struct Options: Sendable {
        /// First retry delay after `fail(retryable: true)`; doubles per attempt, with jitter.
        public var backoffBase: Duration = .seconds(1)
        public var backoffCap: Duration = .seconds(300)
        /// How long an acked task's hash stays readable, so that a retried ack is recognised and
        /// a retried enqueue of it is not queued again. Deleted by the next ack or sweep after that.
        public var completedRetention: Duration = .seconds(3600)
        public var maximumPayloadBytes = 1 << 20
        public init() {}
    }

    public let redis: RedisClient
    public let options: Options

    public init(redis: RedisClient, options: Options = Options()) {
        self.redis = redis
        self.options = options
    }

    // MARK: Producing

    /// Queues a task. With a `dedupeKey`, a task under the same key that is still waiting (ready or
    /// delayed) is returned instead of a new one. The id is made here, so retrying after a lost
    /// reply cannot queue it twice.
    public func enqueue(
        _ queue: QueueName,
        payload: String,
        priority: Int = 0,
        delay: Duration = .zero,
        dedupeKey: String? = nil,
        maxAttempts: Int = 3,
        maxStalls: Int = 3,
        id: String = Identifier.make(prefix: "task")
    ) async throws(TaskQueueError) -> EnqueueResult {
        do {
            try JSONValue.validate(payload)
        } catch {
            throw .invalidArgument(field: "payload", message: "the payload is \(error)", fix: "pass one JSON document, such as {\"item\": 1}")
        }
        guard payload.utf8.count <= options.maximumPayloadBytes else {
            throw .invalidArgument(
                field: "payload",
                message: "the payload is \(payload.utf8.count) bytes, over the limit of \(options.maximumPayloadBytes)",
                fix: "store large inputs elsewhere (a file, the session log) and queue a reference to them"
            )
        }
        guard (0...1000).contains(priority) else {
            throw .invalidArgument(
                field: "priority", message: "\(priority) is out of range", fix: "use 0 to 1000; higher runs first, 0 is the default")
        }
        guard delay >= .zero else {
            throw .invalidArgument(field: "delay", message: "a delay cannot be negative", fix: "use 0 or more")
        }
        guard (1...1000).contains(maxAttempts) else {
            throw .invalidArgument(field: "max_attempts", message: "\(maxAttempts) is out of range", fix: "use 1 to 1000")
        }
        guard (0...1000).contains(maxStalls) else {
            throw .invalidArgument(field: "max_stalls", message: "\(maxStalls) is out of range", fix: "use 0 to 1000")
        }
        // A partitioned queue takes the task into the partition its dedupe key (or id) hashes to,
        // so that a dedupe key always meets its earlier task.
        let partitions = queue.partition == nil ? try await partitions(queue) : 1
        let target = partitions > 1 ? queue.partition(Int(FNV1a.hash(dedupeKey ?? id) % UInt64(partitions))) : queue
        let keys = QueueKeys(target)
        let reply = try await run(
            TaskQueueScripts.enqueue, keys: [keys.ready, keys.delayed, keys.meta, keys.dedupe, keys.marker, keys.since],
            [
                keys.taskPrefix, id, payload, String(priority), String(delay.milliseconds), dedupeKey ?? "",
                String(maxAttempts), String(maxStalls),
            ])
        guard let fields = reply.array, fields.count == 3,
            let outcome = fields[0].string.flatMap(EnqueueOutcome.init(rawValue:)),
            let taskId = fields[1].string, let state = fields[2].string
        else { throw .unexpectedReply("\(reply)") }
        // Consumers of a partitioned queue wait on one marker for all its partitions, which live
        // in other slots than the task: woken after the task is in place, never before.
        if partitions > 1, outcome == .enqueued { try await wake(queue) }
        return EnqueueResult(taskId: taskId, outcome: outcome, state: state)
    }

    // MARK: Consuming

    /// Claims up to `max` ready tasks at once, without waiting. `QueueConsumer` waits for work.
    /// Leases in `acking` are acked first in the same round trip (those of other queues in one
    /// more), as a worker that finished them and wants more does; `acked` has their verdicts.
    public func claim(
        _ queue: QueueName, workerId: String, leaseTTL: Duration, max: Int = 1, acking finished: [TaskLease] = []
    ) async throws(TaskQueueError) -> ClaimResult {
        guard leaseTTL >= .milliseconds(10) else {
            throw .invalidArgument(
                field: "lease_ttl", message: "a lease of \(leaseTTL) is too short", fix: "use at least 10 ms; workers heartbeat at a third of it")
        }
        guard (1...10_000).contains(max) else {
            throw .invalidArgument(field: "max", message: "\(max) tasks per claim is out of range", fix: "use 1 to 10000")
        }
        var acked = [LeaseVerdict](repeating: .ok, count: finished.count)
        let elsewhere = finished.indices.filter { finished[$0].queue != queue }
        if !elsewhere.isEmpty {
            for (index, verdict) in zip(elsewhere, try await ack(elsewhere.map { finished[$0] })) { acked[index] = verdict }
        }
        let here = finished.indices.filter { finished[$0].queue == queue }
        let keys = QueueKeys(queue)
        let claimKeys = [keys.ready, keys.delayed, keys.leased, keys.meta, keys.marker, keys.since, keys.dedupe]
        let claimArguments = [keys.taskPrefix, workerId, String(leaseTTL.milliseconds), String(max)]
        let reply: RedisValue
        if here.isEmpty {
            reply = try await run(TaskQueueScripts.claim, keys: claimKeys, claimArguments)
        } else {
            var arguments = claimArguments + [String(options.completedRetention.milliseconds)]
            arguments.reserveCapacity(arguments.count + here.count * 2)
            for index in here { arguments += [finished[index].taskId, String(finished[index].epoch)] }
            reply = try await run(TaskQueueScripts.ackAndClaim, keys: claimKeys + [keys.done], arguments)
        }
        guard let fields = reply.array, fields.count >= 2, let now = fields[0].int, let hint = fields[1].int else {
            throw .unexpectedReply("\(reply)")
        }
        var index = 2
        if !here.isEmpty {
            guard fields.count >= 3 + here.count, fields[2].int == Int64(here.count) else { throw .unexpectedReply("\(reply)") }
            let verdicts = try Self.verdicts(fields[3..<(3 + here.count)], queue: queue)
            for (position, verdict) in zip(here, verdicts) { acked[position] = verdict }
            index = 3 + here.count
        }
        guard (fields.count - index) % 5 == 0 else { throw .unexpectedReply("\(reply)") }
        var leases: [TaskLease] = []
        leases.reserveCapacity((fields.count - index) / 5)
        while index < fields.count {
            guard let id = fields[index].string, let epoch = fields[index + 1].int, let deadline = fields[index + 2].int,
                let attempt = fields[index + 3].int, let payload = fields[index + 4].string
            else { throw .unexpectedReply("\(reply)") }
            leases.append(TaskLease(queue: queue, taskId: id, epoch: epoch, deadline: deadline, attempt: Int(attempt), payload: payload))
            index += 5
        }
        if !leases.isEmpty { DroverMetrics.queueClaims(queue.rawValue).increment(by: leases.count) }
        return ClaimResult(
            leases: leases,
            now: now,
            nextDueIn: hint >= 0 ? .milliseconds(hint) : nil,
            paused: hint == -2,
            acked: acked
        )
    }

    /// Extends the lease to `leaseTTL` from now, if it is still held under this epoch.
    public func heartbeat(_ lease: inout TaskLease, leaseTTL: Duration) async throws(TaskQueueError) -> LeaseVerdict {
        let keys = QueueKeys(lease.queue)
        let reply = try await run(
            TaskQueueScripts.heartbeat, keys: [keys.leased],
            [
                keys.task(lease.taskId), lease.taskId, String(lease.epoch), String(leaseTTL.milliseconds),
            ])
        let verdict = try Self.verdict(reply)
        if verdict.isOK, let deadline = reply.array?[1].int { lease.deadline = deadline }
        if !verdict.isOK { DroverMetrics.queueLeasesLost(lease.queue.rawValue).increment() }
        return verdict
    }

    /// Marks the task done. Refused for a lease that is no longer held.
    public func ack(_ lease: TaskLease) async throws(TaskQueueError) -> LeaseVerdict {
        try await ack([lease])[0]
    }

    /// Acks many leases with one script call per queue, and returns one verdict per lease, in
    /// order: a worker that finishes tasks in bursts pays Redis once per burst, not per task.
    public func ack(_ leases: [TaskLease]) async throws(TaskQueueError) -> [LeaseVerdict] {
        var verdicts = [LeaseVerdict](repeating: .ok, count: leases.count)
        let byQueue = Dictionary(grouping: leases.indices) { leases[$0].queue }
        for (queue, indices) in byQueue {
            let keys = QueueKeys(queue)
            var arguments = [keys.taskPrefix, String(options.completedRetention.milliseconds)]
            arguments.reserveCapacity(2 + indices.count * 2)
            for index in indices { arguments += [leases[index].taskId, String(leases[index].epoch)] }
            let reply = try await run(TaskQueueScripts.ack, keys: [keys.leased, keys.meta, keys.done], arguments)
            guard let fields = reply.array, fields.count == indices.count else { throw .unexpectedReply("\(reply)") }
            for (index, verdict) in zip(indices, try Self.verdicts(fields[...], queue: queue)) { verdicts[index] = verdict }
        }
        return verdicts
    }

    /// The ack script's answers ('ok' or a lease problem), counted in the metrics.
    private static func verdicts(_ fields: ArraySlice<RedisValue>, queue: QueueName) throws(TaskQueueError) -> [LeaseVerdict] {
        var verdicts: [LeaseVerdict] = []
        verdicts.reserveCapacity(fields.count)
        for field in fields {
            guard let text = field.string else { throw .unexpectedReply("\(field)") }
            verdicts.append(text == "ok" ? .ok : .lost(LeaseProblem(rawValue: text) ?? .gone))
        }
        let lost = verdicts.count(where: { !$0.isOK })
        if verdicts.count > lost { DroverMetrics.queueAcks(queue.rawValue).increment(by: verdicts.count - lost) }
        if lost > 0 { DroverMetrics.queueLeasesLost(queue.rawValue).increment(by: lost) }
        return verdicts
    }

    /// Gives the task back. A retryable failure with attempts left comes back after an exponential
    /// backoff with jitter; otherwise the task goes to the dead-letter set with `error`.
    public func fail(_ lease: TaskLease, error: String, retryable: Bool) async throws(TaskQueueError) -> FailOutcome {
        let keys = QueueKeys(lease.queue)
        let reply = try await run(
            TaskQueueScripts.fail, keys: [keys.leased, keys.delayed, keys.dead, keys.meta, keys.marker],
            [
                keys.task(lease.taskId), lease.taskId, String(lease.epoch), String(error.prefix(4096)),
                retryable ? "1" : "0", String(backoff(attempt: lease.attempt).milliseconds),
            ])
        guard let fields = reply.array, let ok = fields.first?.int else { throw .unexpectedReply("\(reply)") }
        if ok == 0 {
            DroverMetrics.queueLeasesLost(lease.queue.rawValue).increment()
            return .lost(fields.count > 1 ? LeaseProblem(rawValue: fields[1].string ?? "") ?? .gone : .gone)
        }
        guard fields.count == 3, let outcome = fields[1].string, let at = fields[2].int else { throw .unexpectedReply("\(reply)") }
        DroverMetrics.queueFails(lease.queue.rawValue, outcome == "retry" ? "retry" : "dead").increment()
        return outcome == "retry" ? .retrying(at: at) : .dead
    }

    /// Hands the task back without spending an attempt, ready now or after `delay`.
    public func release(_ lease: TaskLease, delay: Duration = .zero) async throws(TaskQueueError) -> LeaseVerdict {
        let keys = QueueKeys(lease.queue)
        let reply = try await run(
            TaskQueueScripts.release, keys: [keys.leased, keys.delayed, keys.ready, keys.meta, keys.marker, keys.since],
            [
                keys.task(lease.taskId), lease.taskId, String(lease.epoch), String(max(0, delay.milliseconds)),
            ])
        let verdict = try Self.verdict(reply)
        // Handed back ready now: a partitioned queue's consumers wait on the queue's marker.
        if verdict.isOK, delay <= .zero, try await partitions(lease.queue.whole) > 1 { try await wake(lease.queue) }
        return verdict
    }

    /// Full-jitter exponential backoff: a random delay in the upper half of base * 2^(attempt-1),
    /// capped, so that a burst of failures does not come back as a burst.
    public func backoff(attempt: Int) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let raw = options.backoffBase * (1 << exponent)
        let capped = min(raw, options.backoffCap)
        return capped * Double.random(in: 0.5...1.0)
    }

    // MARK: Maintenance

    /// Returns expired leases to the ready set (their next claim gets epoch + 1), and sends tasks
    /// that stalled more than their `maxStalls` to the dead-letter set. A lock keeps it to once per
    /// `interval` however many workers call it; an interval of zero runs it unconditionally.
    public func sweep(_ queue: QueueName, interval: Duration, limit: Int = 1000) async throws(TaskQueueError) -> SweepResult {
        let keys = QueueKeys(queue)
        let reply = try await run(
            TaskQueueScripts.sweep, keys: [keys.leased, keys.ready, keys.dead, keys.meta, keys.marker, keys.since, keys.sweepLock, keys.done],
            [
                keys.taskPrefix, String(interval.milliseconds), Identifier.make(prefix: "sweep"), String(limit),
                String(options.completedRetention.milliseconds),
            ])
        guard let fields = reply.array, fields.count == 3, let ran = fields[0].int, let requeued = fields[1].int, let dead = fields[2].int
        else { throw .unexpectedReply("\(reply)") }
        if requeued > 0 { DroverMetrics.queueLeaseExpiries(queue.rawValue).increment(by: requeued) }
        if dead > 0 { DroverMetrics.queueStalledDead(queue.rawValue).increment(by: dead) }
        return SweepResult(ran: ran == 1, requeued: Int(requeued), dead: Int(dead))
    }

    /// Hands back, ready at once, every lease on `queue` not held by an owner whose worker id
    /// starts with `keepingOwnerPrefix`. Only for a caller that knows those owners are gone (a
    /// lease of a live worker taken this way costs it its turn, never correctness: the next
    /// claim raises the epoch, and the session's fence stops the old holder's writes).
    @discardableResult
    public func reclaimLeases(_ queue: QueueName, keepingOwnerPrefix: String) async throws(TaskQueueError) -> Int {
        var total = 0
        for partition in try await partitionNames(queue) {
            let keys = QueueKeys(partition)
            let reply = try await run(
                TaskQueueScripts.reclaim, keys: [keys.leased, keys.ready, keys.meta, keys.marker, keys.since],
                [keys.taskPrefix, keepingOwnerPrefix])
            guard let count = reply.int else { throw .unexpectedReply("\(reply)") }
            total += Int(count)
        }
        if total > 0, try await partitions(queue) > 1 { try await wake(queue) }
        return total
    }

    public struct PurgeResult: Sendable, Equatable, Codable {
        public let ready, delayed, dead, leased: Int

        public init(ready: Int, delayed: Int, dead: Int, leased: Int) {
            self.ready = ready
            self.delayed = delayed
            self.dead = dead
            self.leased = leased
        }
    }

    /// Deletes every task waiting in `queue` (ready, delayed, dead), and with `includeLeased`
    /// the ones workers hold: only for a queue nothing runs from (their acks then find nothing).
    public func purge(_ queue: QueueName, includeLeased: Bool = false) async throws(TaskQueueError) -> PurgeResult {
        var total = PurgeResult(ready: 0, delayed: 0, dead: 0, leased: 0)
        for partition in try await partitionNames(queue) {
            let part = try await purgePartition(partition, includeLeased: includeLeased)
            total = PurgeResult(
                ready: total.ready + part.ready, delayed: total.delayed + part.delayed, dead: total.dead + part.dead,
                leased: total.leased + part.leased)
        }
        return total
    }

    private func purgePartition(_ queue: QueueName, includeLeased: Bool) async throws(TaskQueueError) -> PurgeResult {
        let keys = QueueKeys(queue)
        let reply = try await run(
            TaskQueueScripts.purge, keys: [keys.ready, keys.delayed, keys.dead, keys.leased, keys.since, keys.dedupe],
            [keys.taskPrefix, includeLeased ? "1" : "0"])
        guard let f = reply.array?.compactMap(\.int), f.count == 4 else { throw .unexpectedReply("\(reply)") }
        return PurgeResult(ready: Int(f[0]), delayed: Int(f[1]), dead: Int(f[2]), leased: Int(f[3]))
    }

    /// A paused queue keeps accepting tasks but hands none out.
    public func pause(_ queue: QueueName) async throws(TaskQueueError) {
        for partition in try await partitionNames(queue) { try await setPaused(partition, true) }
    }

    public func resume(_ queue: QueueName) async throws(TaskQueueError) {
        for partition in try await partitionNames(queue) { try await setPaused(partition, false) }
        if try await partitions(queue) > 1 { try await wake(queue) }
    }

    private func setPaused(_ queue: QueueName, _ paused: Bool) async throws(TaskQueueError) {
        let keys = QueueKeys(queue)
        _ = try await run(TaskQueueScripts.setPaused, keys: [keys.meta, keys.marker], [paused ? "1" : "0"])
    }

    /// The queue's counts; for a partitioned queue, summed over its partitions (paused if any is,
    /// the oldest ready task of all).
    public func stats(_ queue: QueueName) async throws(TaskQueueError) -> QueueStats {
        var parts: [QueueStats] = []
        for partition in try await partitionNames(queue) { parts.append(try await partitionStats(partition)) }
        guard parts.count > 1 else { return parts[0] }
        func sum(_ field: (QueueStats) -> Int) -> Int { parts.reduce(0) { $0 + field($1) } }
        return QueueStats(
            queue: queue.rawValue, ready: sum(\.ready), delayed: sum(\.delayed), leased: sum(\.leased), dead: sum(\.dead),
            oldestReadyAgeMs: parts.compactMap(\.oldestReadyAgeMs).max(), paused: parts.contains(where: \.paused),
            totals: .init(
                enqueued: sum(\.totals.enqueued), acked: sum(\.totals.acked), retried: sum(\.totals.retried), dead: sum(\.totals.dead),
                stalled: sum(\.totals.stalled)))
    }

    private func partitionStats(_ queue: QueueName) async throws(TaskQueueError) -> QueueStats {
        let keys = QueueKeys(queue)
        let reply = try await run(TaskQueueScripts.stats, keys: [keys.ready, keys.delayed, keys.leased, keys.dead, keys.meta, keys.since], [])
        guard let f = reply.array?.compactMap(\.int), f.count == 11 else { throw .unexpectedReply("\(reply)") }
        return QueueStats(
            queue: queue.rawValue,
            ready: Int(f[0]), delayed: Int(f[1]), leased: Int(f[2]), dead: Int(f[3]),
            oldestReadyAgeMs: f[4] >= 0 ? f[4] : nil,
            paused: f[5] == 1,
            totals: .init(enqueued: Int(f[6]), acked: Int(f[7]), retried: Int(f[8]), dead: Int(f[9]), stalled: Int(f[10]))
        )
    }

    /// Every queue that has tasks or settings in Redis, by name.
    public func queueNames() async throws -> [QueueName] {
        var names = Set<String>()
        for key in try await redis.scanKeys(matching: "drover:{q:*}:meta") {
            guard let open = key.range(of: "{q:"), let close = key.range(of: "}:meta") else { continue }
            // A partition's keys carry NAME/K: the queue is NAME.
            names.insert(String(key[open.upperBound..<close.lowerBound].prefix { $0 != "/" }))
        }
        return names.sorted().compactMap { try? QueueName($0) }
    }

    /// The newest dead tasks first, with their last error.
    public func deadTasks(_ queue: QueueName, limit: Int = 20) async throws(TaskQueueError) -> [DeadTask] {
        var dead: [DeadTask] = []
        for partition in try await partitionNames(queue) { dead += try await partitionDeadTasks(partition, limit: limit) }
        return Array(dead.sorted { $0.diedAtMs > $1.diedAtMs }.prefix(limit))
    }

    private func partitionDeadTasks(_ queue: QueueName, limit: Int) async throws(TaskQueueError) -> [DeadTask] {
        let keys = QueueKeys(queue)
        let reply = try await run(TaskQueueScripts.peekDead, keys: [keys.dead], [keys.taskPrefix, String(max(1, limit))])
        guard let f = reply.array, f.count % 5 == 0 else { throw .unexpectedReply("\(reply)") }
        return stride(from: 0, to: f.count, by: 5).map { i in
            DeadTask(
                id: f[i].string ?? "", diedAtMs: f[i + 1].int ?? 0, attempts: Int(f[i + 2].int ?? 0),
                lastError: f[i + 3].string ?? "", payload: f[i + 4].string ?? ""
            )
        }
    }

    /// Puts a dead task back in the ready set with its attempts reset. Returns false, with the
    /// task's state, if it is not dead.
    public func requeue(_ queue: QueueName, taskId: String) async throws(TaskQueueError) -> (requeued: Bool, state: String) {
        var answer: (requeued: Bool, state: String) = (false, "gone")
        for partition in try await partitionNames(queue) {
            answer = try await requeuePartition(partition, taskId: taskId)
            if answer.requeued {
                if try await partitions(queue.whole) > 1 { try await wake(queue) }
                return answer
            }
            if answer.state != "gone" { return answer }
        }
        return answer
    }

    private func requeuePartition(_ queue: QueueName, taskId: String) async throws(TaskQueueError) -> (requeued: Bool, state: String) {
        let keys = QueueKeys(queue)
        let reply = try await run(
            TaskQueueScripts.requeue, keys: [keys.dead, keys.ready, keys.meta, keys.marker, keys.since], [keys.task(taskId), taskId])
        guard let f = reply.array, let ok = f.first?.int else { throw .unexpectedReply("\(reply)") }
        return ok == 1 ? (true, "ready") : (false, f.count > 1 ? f[1].string ?? "gone" : "gone")
    }

    /// Every field of one task, for inspection.
    public func task(_ queue: QueueName, id: String) async throws(TaskQueueError) -> [String: String]? {
        let reply: RedisValue
        do {
            reply = try await redis.send(["HGETALL", QueueKeys(queue).task(id)], idempotent: true)
        } catch {
            throw .redis(error)
        }
        let fields = reply.hashFields
        return fields.isEmpty ? nil : fields
    }

    /// A consumer that waits for work without polling. Give each worker loop its own: it holds a
    /// dedicated connection for the blocking wait.
    public func consumer(_ queue: QueueName, workerId: String, sweepInterval: Duration = .seconds(1)) -> QueueConsumer {
        QueueConsumer(queue: self, name: queue, workerId: workerId, sweepInterval: sweepInterval)
    }

    func markerKey(_ queue: QueueName) -> String { QueueKeys(queue).marker }

    // MARK: Partitions

    /// Where each partitioned queue's partition count is kept (field: queue name).
    static let partitionsKey = "drover:queues:partitions"

    /// How many partitions `queue` has, 1 for an unsplit queue. Read from Redis at most every
    /// two seconds per process, so a change reaches producers and consumers within that.
    public func partitions(_ queue: QueueName, fresh: Bool = false) async throws(TaskQueueError) -> Int {
        let cacheKey = partitionCountKey(queue)
        let now = ContinuousClock.now
        if !fresh, let cached = PartitionCounts.shared.withLock({ $0[cacheKey] }), now - cached.readAt < .seconds(2) {
            return cached.count
        }
        let reply: RedisValue
        do {
            reply = try await redis.send(["HGET", Self.partitionsKey, queue.rawValue], idempotent: true)
        } catch {
            throw .redis(error)
        }
        let count = max(1, Int(reply.int ?? 1))
        PartitionCounts.shared.withLock { $0[cacheKey] = (count, now) }
        return count
    }

    /// Splits `queue` into `count` partitions, each with a hash tag of its own (`{q:NAME/K}`), so
    /// that on a Redis Cluster its tasks spread over masters. Partitions only grow: a task in a
    /// partition that went away would never be claimed.
    public func setPartitions(_ queue: QueueName, _ count: Int) async throws(TaskQueueError) {
        guard (1...256).contains(count) else {
            throw .invalidArgument(field: "partitions", message: "\(count) partitions is out of range", fix: "use 1 to 256")
        }
        let current = try await partitions(queue.whole, fresh: true)
        guard count >= current else {
            throw .invalidArgument(
                field: "partitions", message: "\(queue.rawValue) has \(current) partitions, and partitions can only grow",
                fix: "use \(current) or more; to have fewer, drain the queue and delete it (drover queue purge) first")
        }
        guard count > current else { return }
        // New partitions start paused if the queue is.
        let paused = try await partitionStats(queue.whole).paused
        if paused {
            for index in current..<count { try await setPaused(queue.partition(index), true) }
        }
        do {
            try await redis.send(["HSET", Self.partitionsKey, queue.rawValue, String(count)])
        } catch {
            throw .redis(error)
        }
        PartitionCounts.shared.withLock { $0[partitionCountKey(queue)] = (count, .now) }
    }

    /// Where `PartitionCounts` keeps this queue's count: per Redis, since a test process talks to many.
    private func partitionCountKey(_ queue: QueueName) -> String { "\(redis.url)|\(queue.rawValue)" }

    /// Every partition of `queue`, partition 0 first; `queue` alone when it names one partition.
    public func partitionNames(_ queue: QueueName) async throws(TaskQueueError) -> [QueueName] {
        guard queue.partition == nil else { return [queue] }
        return (0..<(try await partitions(queue))).map(queue.partition)
    }

    /// The marker every consumer of a partitioned queue waits on, in a slot of its own.
    func wakeKey(_ queue: QueueName) -> String { "drover:{qw:\(queue.rawValue)}:wake" }

    /// Wakes one waiting consumer of a partitioned queue.
    func wake(_ queue: QueueName) async throws(TaskQueueError) {
        do {
            try await redis.send(["ZADD", wakeKey(queue), "0", "0"])
        } catch {
            throw .redis(error)
        }
    }

    // MARK: Plumbing

    private func run(_ script: RedisScript, keys: [String], _ arguments: [String]) async throws(TaskQueueError) -> RedisValue {
        do {
            return try await redis.eval(script, keys: keys, arguments: arguments)
        } catch {
            throw .redis(error)
        }
    }

    private static func verdict(_ reply: RedisValue) throws(TaskQueueError) -> LeaseVerdict {
        guard let fields = reply.array, let ok = fields.first?.int else { throw .unexpectedReply("\(reply)") }
        if ok == 1 { return .ok }
        return .lost(fields.count > 1 ? LeaseProblem(rawValue: fields[1].string ?? "") ?? .gone : .gone)
    }
}

/// Partition counts read lately, per Redis and queue, for every `TaskQueue` of the process: the
/// API makes a `TaskQueue` per request, and must not read the count each time.
private enum PartitionCounts {
    static let shared = Locked<[String: (count: Int, readAt: ContinuousClock.Instant)]>([:])
}

/// Waits for tasks on one queue without busy-polling: when nothing is ready it blocks in
/// `BZPOPMIN` on the queue's marker key, which every enqueue, retry and requeue touches. Between
/// waits it runs the lock-guarded sweep, so expired leases come back even on a quiet queue.
public final class QueueConsumer: Sendable {
    public let name: QueueName
    public let workerId: String
    private let queue: TaskQueue
    private let connection: RedisBlockingConnection
    private let sweepInterval: Duration
    private let lastSweep = Locked(ContinuousClock.now - .seconds(3600))
    /// The partition the next claim starts at, so that consumers do not all drain partition 0 first.
    private let nextPartition = Locked(Int.random(in: 0..<1024))

    init(queue: TaskQueue, name: QueueName, workerId: String, sweepInterval: Duration) {
        self.queue = queue
        self.name = name
        self.workerId = workerId
        self.sweepInterval = sweepInterval
        self.connection = queue.redis.blockingConnection(name: "consumer-\(name.rawValue)")
    }

    /// Claims up to `max` tasks, waiting up to `wait` for the first. Returns an empty array when
    /// the wait ran out. Cancelling the calling task ends the wait at once.
    ///
    /// Leases in `acking` are acked in the first claim's round trip; lost ones are counted in
    /// the queue's metrics. If this throws, whether they were acked is unknown: ack them again
    /// (a repeated ack is recognised).
    public func next(max: Int = 1, leaseTTL: Duration, wait: Duration, acking finished: [TaskLease] = []) async throws -> [TaskLease] {
        let clock = ContinuousClock()
        let deadline = clock.now + wait
        var finished = finished
        while true {
            try Task.checkCancellation()
            let partitions = name.partition == nil ? try await queue.partitions(name) : 1
            if clock.now - lastSweep.value >= sweepInterval {
                lastSweep.withLock { $0 = clock.now }
                for partition in 0..<partitions { _ = try await queue.sweep(name.partition(partition), interval: sweepInterval) }
            }
            let claimed = try await claim(max: max, leaseTTL: leaseTTL, acking: finished, partitions: partitions)
            finished = []
            if !claimed.leases.isEmpty { return claimed.leases }
            let remaining = deadline - clock.now
            if remaining <= .zero { return [] }
            var block = min(remaining, sweepInterval)
            if let due = claimed.nextDueIn { block = min(block, due) }
            block = Swift.max(block, .milliseconds(1))
            let marker = partitions > 1 ? queue.wakeKey(name) : queue.markerKey(name)
            try await connection.send(["BZPOPMIN", marker, String(format: "%.3f", block.seconds)])
        }
    }

    /// One claim of up to `max` tasks; on a partitioned queue, from one partition after another,
    /// starting one further along each time, until `max` are claimed or every partition was asked.
    /// Priority orders tasks within a partition, not across partitions.
    private func claim(
        max: Int, leaseTTL: Duration, acking finished: [TaskLease], partitions: Int
    ) async throws -> (
        leases: [TaskLease], nextDueIn: Duration?
    ) {
        guard partitions > 1 else {
            let claimed = try await queue.claim(name, workerId: workerId, leaseTTL: leaseTTL, max: max, acking: finished)
            return (claimed.leases, claimed.paused ? nil : claimed.nextDueIn)
        }
        let start = nextPartition.withLock { next in
            defer { next += 1 }
            return next
        }
        var leases: [TaskLease] = []
        var due: Duration?
        var acking = finished
        for offset in 0..<partitions where leases.count < max {
            let partition = name.partition((start + offset) % partitions)
            let claimed = try await queue.claim(partition, workerId: workerId, leaseTTL: leaseTTL, max: max - leases.count, acking: acking)
            acking = []
            leases += claimed.leases
            if let next = claimed.nextDueIn, !claimed.paused { due = due.map { Swift.min($0, next) } ?? next }
        }
        // More may be waiting: pass the wake-up on to another consumer, as a full claim of one
        // partition does through that partition's own marker.
        if leases.count == max { try await queue.wake(name) }
        return (leases, due)
    }

    public func close() {
        connection.close()
    }
}
