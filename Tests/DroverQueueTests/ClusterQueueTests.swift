import DroverCore
import DroverQueue
import DroverRedis
import DroverTesting
import Foundation
import Testing

/// The task queue on a real Redis Cluster: each queue's keys share one hash tag, so every script
/// runs on the one master that owns the queue, and queues spread over the masters.
@Suite("Task queue on a real Redis Cluster", .serialized)
struct ClusterQueueTests {
    @Test("queues on different masters: enqueue, claim by waiting consumers, ack; each task once; SCAN finds every queue")
    func queuesOnEveryMaster() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client(poolSize: 4)
            defer { client.close() }
            let queue = TaskQueue(redis: client)
            // Names chosen so the queues' slots fall on all three masters.
            var names: [QueueName] = []
            var masters = Set<Int>()
            var index = 0
            while masters.count < 3 || names.count < 6 {
                let name = try QueueName("cluster-\(index)")
                index += 1
                let slot = RedisHashSlot.of("drover:{q:\(name.rawValue)}:ready")
                let master = try #require(try await cluster.masterPort(ofSlot: slot))
                if masters.insert(master).inserted || names.count < 6 { names.append(name) }
            }
            let queues = names
            let total = names.count * 20
            let claimed = Locked<[String: Int]>([:])
            let consumers = queues.map { queue.consumer($0, workerId: "w-\($0.rawValue)") }
            defer { for consumer in consumers { consumer.close() } }
            // Consumers wait on their queue's marker (BZPOPMIN on its master) before anything is queued.
            let workers = Task { try await claimAll(total, by: consumers, of: queue, max: 4, into: claimed) }
            for name in names {
                for task in 0..<20 { _ = try await queue.enqueue(name, payload: #"{"task":"\#(name.rawValue)/\#(task)"}"#) }
            }
            try await finishing(within: .seconds(120)) { try await workers.value }
            let counts = claimed.withLock { $0 }
            #expect(counts.count == names.count * 20)
            #expect(counts.values.allSatisfy { $0 == 1 }, "a task was claimed twice")
            #expect(
                try await eventually {
                    var acked = 0
                    for name in names { acked += try await queue.stats(name).totals.acked }
                    return acked == names.count * 20
                })
            let listed = Set(try await queue.queueNames())
            #expect(Set(names).isSubset(of: listed), "queueNames missed one: \(listed)")
        }
    }

    @Test("one queue in 6 partitions: its tasks spread over every master; waiting consumers claim each once; dedupe, stats and pause hold")
    func partitionedQueue() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client(poolSize: 4)
            defer { client.close() }
            let queue = TaskQueue(redis: client)
            let name = try QueueName("partitioned")
            try await queue.setPartitions(name, 6)
            #expect(try await queue.partitions(name) == 6)
            var masters = Set<Int>()
            for partition in 0..<6 {
                let slot = RedisHashSlot.of("drover:{q:\(name.partition(partition))}:ready")
                masters.insert(try #require(try await cluster.masterPort(ofSlot: slot)))
            }
            #expect(masters.count == 3, "6 partitions on \(masters.count) masters")

            let total = 120
            let claimed = Locked<[String: Int]>([:])
            let consumers = (0..<3).map { queue.consumer(name, workerId: "w\($0)") }
            defer { for consumer in consumers { consumer.close() } }
            // The consumers wait (on the queue's one marker) before anything is queued.
            let workers = Task { try await claimAll(total, by: consumers, of: queue, max: 3, into: claimed) }
            for task in 0..<total {
                let result = try await queue.enqueue(name, payload: #"{"n":\#(task)}"#, dedupeKey: "key-\(task)")
                #expect(result.outcome == .enqueued)
            }
            try await finishing(within: .seconds(120)) { try await workers.value }
            #expect(claimed.withLock { $0.count } == total)
            #expect(claimed.withLock { $0.values.allSatisfy { $0 == 1 } }, "a task was claimed twice")
            let stats = try await eventually { try await queue.stats(name).totals.acked == total }
            let totals = try await queue.stats(name).totals
            #expect(stats, "\(totals)")
            #expect(totals.enqueued == total)

            // Every partition took a share, and a dedupe key meets its earlier task in its partition.
            try await queue.pause(name)
            var shares: [Int] = []
            for partition in 0..<6 { shares.append(try await queue.stats(name.partition(partition)).totals.enqueued) }
            #expect(shares.allSatisfy { $0 > 0 }, "\(shares)")
            let first = try await queue.enqueue(name, payload: #"{"n":"again"}"#, dedupeKey: "dup")
            let second = try await queue.enqueue(name, payload: #"{"n":"again"}"#, dedupeKey: "dup")
            #expect(first.outcome == .enqueued && second.outcome == .deduplicated && second.taskId == first.taskId)
            // Paused, every partition holds its tasks.
            let paused = try await consumers[0].next(max: 3, leaseTTL: .seconds(30), wait: .milliseconds(300))
            #expect(paused.isEmpty)
            #expect(try await queue.stats(name).paused)
            try await queue.resume(name)
            let resumed = try await consumers[0].next(max: 3, leaseTTL: .seconds(30), wait: .seconds(10))
            #expect(resumed.map(\.taskId) == [first.taskId])
            #expect(try await queue.queueNames().contains(name))
            await #expect(throws: TaskQueueError.self) { try await queue.setPartitions(name, 3) }
        }
    }
}

/// Runs `consumers` until `total` tasks are claimed, counting each task's claims by payload in
/// `claimed`; each acks what it claimed with its next claim, and the last batch at the end.
private func claimAll(_ total: Int, by consumers: [QueueConsumer], of queue: TaskQueue, max: Int, into claimed: Locked<[String: Int]>) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for consumer in consumers {
            group.addTask {
                var finished: [TaskLease] = []
                while claimed.withLock({ $0.values.reduce(0, +) }) < total {
                    let leases = try await consumer.next(max: max, leaseTTL: .seconds(30), wait: .seconds(2), acking: finished)
                    for lease in leases { claimed.withLock { $0[lease.payload, default: 0] += 1 } }
                    finished = leases
                }
                if !finished.isEmpty { _ = try await queue.ack(finished) }
            }
        }
        try await group.waitForAll()
    }
}
