import ArgumentParser
import DroverCore
import DroverQueue
import DroverRedis
import DroverRuntime
import DroverTools
import Foundation

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Inspect and operate task queues.",
        subcommands: [Stats.self, Enqueue.self, Dead.self, Requeue.self, Pause.self, Resume.self, Purge.self, Partition.self]
    )

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show ready, delayed, leased and dead counts, the oldest ready age, and totals.",
            discussion: "With no names, shows every queue that exists in Redis."
        )

        @Argument(help: "Queue names (default: all).")
        var queues: [String] = []

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            try await withRuntime { runtime in
                let queue = TaskQueue(redis: runtime.redis)
                var names = try queues.map { name throws(TaskQueueError) in try QueueName(name) }
                if names.isEmpty { names = try await queue.queueNames() }
                var rows: [QueueStats] = []
                for name in names { rows.append(try await queue.stats(name)) }
                if json {
                    print(try encodeJSON(rows))
                    return
                }
                if rows.isEmpty {
                    print("no queues yet")
                    return
                }
                let header = ["QUEUE", "READY", "DELAYED", "LEASED", "DEAD", "OLDEST", "PAUSED", "ENQUEUED", "ACKED", "RETRIED", "STALLED"]
                let table = rows.map { s in
                    [
                        s.queue, "\(s.ready)", "\(s.delayed)", "\(s.leased)", "\(s.dead)",
                        s.oldestReadyAgeMs.map(formatMilliseconds) ?? "-", s.paused ? "yes" : "no",
                        "\(s.totals.enqueued)", "\(s.totals.acked)", "\(s.totals.retried)", "\(s.totals.stalled)",
                    ]
                }
                printTable(header: header, rows: table)
            }
        }
    }

    struct Enqueue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue one task and print its id.")

        @Argument(help: "The queue.")
        var queue: String

        @Option(help: "The task's JSON payload; '-' reads it from standard input.")
        var payload: String

        @Option(help: "0 to 1000; higher runs first.")
        var priority = 0

        @Option(name: .customLong("delay-ms"), help: "Hold the task back this many milliseconds.")
        var delayMilliseconds = 0

        @Option(help: "While a task with this key waits, enqueueing another returns it instead.")
        var dedupeKey: String?

        @Option(help: "Attempts before the task goes to the dead-letter set.")
        var maxAttempts = 3

        func run() async throws {
            let body = payload == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : payload
            try await withRuntime { runtime in
                let result = try await TaskQueue(redis: runtime.redis).enqueue(
                    try QueueName(queue), payload: body, priority: priority, delay: .milliseconds(delayMilliseconds),
                    dedupeKey: dedupeKey, maxAttempts: maxAttempts
                )
                print("\(result.taskId)\t\(result.outcome.rawValue)\t\(result.state)")
            }
        }
    }

    struct Dead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead tasks, newest first, with their last error.")

        @Argument(help: "The queue.")
        var queue: String

        @Option(help: "How many to show.")
        var limit = 20

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            try await withRuntime { runtime in
                let dead = try await TaskQueue(redis: runtime.redis).deadTasks(try QueueName(queue), limit: limit)
                if json {
                    print(try encodeJSON(dead))
                } else if dead.isEmpty {
                    print("no dead tasks in \(queue)")
                } else {
                    printTable(
                        header: ["TASK", "DIED", "ATTEMPTS", "LAST ERROR"],
                        rows: dead.map { [$0.id, formatEpochMilliseconds($0.diedAtMs), "\($0.attempts)", String($0.lastError.prefix(80))] }
                    )
                }
            }
        }
    }

    struct Requeue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put dead tasks back in the ready set with their attempts reset.")

        @Argument(help: "The queue.")
        var queue: String

        @Argument(help: "Task ids.")
        var tasks: [String] = []

        @Flag(help: "Requeue every dead task of the queue.")
        var all = false

        func validate() throws {
            if tasks.isEmpty && !all { throw ValidationError("name task ids, or pass --all") }
            if !tasks.isEmpty && all { throw ValidationError("name task ids or pass --all, not both") }
        }

        func run() async throws {
            try await withRuntime { runtime in
                let queue = TaskQueue(redis: runtime.redis)
                let name = try QueueName(self.queue)
                var ids = tasks
                if all { ids = try await queue.deadTasks(name, limit: 1_000_000).map(\.id) }
                var failed = 0
                for id in ids {
                    let result = try await queue.requeue(name, taskId: id)
                    print("\(id)\t\(result.requeued ? "requeued" : "not dead (\(result.state))")")
                    if !result.requeued { failed += 1 }
                }
                if failed > 0 { throw ExitCode(1) }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop handing out tasks; enqueues are still accepted.")
        @Argument(help: "The queue.") var queue: String

        func run() async throws {
            try await withRuntime { runtime in
                try await TaskQueue(redis: runtime.redis).pause(try QueueName(queue))
                print("paused \(queue)")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a queue's waiting tasks: ready, delayed and dead.",
            discussion: """
                Tasks workers hold now are left to finish, unless --include-leased (for a queue no
                worker runs from any more: their acks then find nothing). Counts and a pause stay.
                """)
        @Argument(help: "The queue.") var queue: String
        @Flag(help: "Also delete the tasks workers hold now.") var includeLeased = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await withRuntime(announce: !json) { runtime in
                let result = try await TaskQueue(redis: runtime.redis).purge(try QueueName(queue), includeLeased: includeLeased)
                if json {
                    print(try encodeJSON(result))
                } else {
                    print(
                        "purged \(queue): \(result.ready) ready, \(result.delayed) delayed, \(result.dead) dead"
                            + (includeLeased ? ", \(result.leased) leased" : " (leased tasks left to finish)"))
                }
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hand out tasks again after a pause.")
        @Argument(help: "The queue.") var queue: String

        func run() async throws {
            try await withRuntime { runtime in
                try await TaskQueue(redis: runtime.redis).resume(try QueueName(queue))
                print("resumed \(queue)")
            }
        }
    }

    struct Partition: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Split a queue into partitions, so that on a Redis Cluster its tasks spread over masters.",
            discussion: """
                Each partition has a hash tag of its own ({q:NAME/K}; partition 0 keeps the queue's
                keys), so a cluster puts partitions on different masters. Producers put a task in
                the partition its dedupe key (or id) hashes to; workers claim from every partition,
                and wait on one marker while all are empty. Priority orders tasks within a
                partition, not across partitions. Partitions only grow. With no --partitions, prints
                how many the queue has.
                """)
        @Argument(help: "The queue.") var queue: String
        @Option(help: "How many partitions the queue should have (1 to 256, no fewer than now).") var partitions: Int?

        func run() async throws {
            try await withRuntime { runtime in
                let taskQueue = TaskQueue(redis: runtime.redis)
                let name = try QueueName(queue)
                if let partitions { try await taskQueue.setPartitions(name, partitions) }
                print("\(queue): \(try await taskQueue.partitions(name, fresh: true)) partitions")
            }
        }
    }
}
