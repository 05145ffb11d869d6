import DroverCore
import DroverRedis

/// A validated queue name. It becomes part of a Redis hash tag, so it is kept to a safe alphabet.
///
/// A queue split into partitions (`TaskQueue.setPartitions`) has one set of keys per partition:
/// partition 0 is the queue's own keys, partition K its keys under the tag `{q:NAME/K}`. A lease
/// names the partition its task came from, so acks and heartbeats go to the right keys.
public struct QueueName: Sendable, Hashable, CustomStringConvertible {
    /// The queue's name, the same for all its partitions (and the metrics' label).
    public let rawValue: String
    /// The partition, 1 or more; nil for partition 0, the queue's own keys.
    public private(set) var partition: Int?

    public init(_ rawValue: String) throws(TaskQueueError) {
        let allowed = rawValue.utf8.allSatisfy { byte in
            (byte >= 97 && byte <= 122) || (byte >= 65 && byte <= 90) || (byte >= 48 && byte <= 57)
                || byte == 45 || byte == 95 || byte == 46
        }
        guard !rawValue.isEmpty, rawValue.utf8.count <= 64, allowed else {
            throw .invalidArgument(
                field: "queue",
                message: "'\(rawValue)' is not a queue name",
                fix: "use 1 to 64 letters, digits, '-', '_' or '.'"
            )
        }
        self.rawValue = rawValue
    }

    /// Partition `index` of this queue (0 is the queue itself).
    public func partition(_ index: Int) -> QueueName {
        var name = self
        name.partition = index > 0 ? index : nil
        return name
    }

    /// The queue as a whole, whichever partition this names.
    public var whole: QueueName { partition(0) }

    public var description: String { partition.map { "\(rawValue)/\($0)" } ?? rawValue }
}

/// The Redis keys of one queue. All share the hash tag `{q:NAME}`, so a queue lives in one
/// Redis Cluster slot and every script touches a single slot.
struct QueueKeys: Sendable {
    let ready, delayed, leased, dead, done, meta, dedupe, marker, since, sweepLock, taskPrefix: String

    init(_ name: QueueName) {
        let base = "drover:{q:\(name)}:"
        ready = base + "ready"
        delayed = base + "delayed"
        leased = base + "leased"
        dead = base + "dead"
        done = base + "done"
        meta = base + "meta"
        dedupe = base + "dedupe"
        marker = base + "marker"
        since = base + "since"
        sweepLock = base + "sweep-lock"
        taskPrefix = base + "task:"
    }

    func task(_ id: String) -> String { taskPrefix + id }
}

/// A claim on one task: valid until `deadline` (milliseconds on Redis' clock) unless renewed,
/// and only for this `epoch`.
public struct TaskLease: Sendable, Hashable {
    public let queue: QueueName
    public let taskId: String
    public let epoch: Int64
    public var deadline: Int64
    public let attempt: Int
    public let payload: String
}

public enum EnqueueOutcome: String, Sendable {
    /// A new task was queued.
    case enqueued
    /// A task with the same dedupe key was still waiting; its id is returned.
    case deduplicated
    /// A task with this id exists already (a retried enqueue); nothing changed.
    case exists
}

public struct EnqueueResult: Sendable, Equatable {
    public let taskId: String
    public let outcome: EnqueueOutcome
    public let state: String
}

public struct ClaimResult: Sendable {
    public let leases: [TaskLease]
    /// Redis' clock when the claim ran, in milliseconds.
    public let now: Int64
    /// How long until the next delayed task is due, if any is waiting.
    public let nextDueIn: Duration?
    public let paused: Bool
    /// One verdict per lease passed as `acking`, in order.
    public let acked: [LeaseVerdict]
}

/// Why a lease can no longer be used.
public enum LeaseProblem: String, Sendable, Equatable {
    /// The task was claimed again under a newer epoch.
    case superseded
    /// The deadline passed on Redis' clock.
    case expired
    /// The task was acked, failed or swept back to ready.
    case released
    /// The task no longer exists.
    case gone
}

public enum LeaseVerdict: Sendable, Equatable {
    case ok
    case lost(LeaseProblem)

    public var isOK: Bool { self == .ok }
}

public enum FailOutcome: Sendable, Equatable {
    /// It will be offered again at this time (ms, Redis clock).
    case retrying(at: Int64)
    /// It went to the dead-letter set.
    case dead
    case lost(LeaseProblem)
}

public struct SweepResult: Sendable, Equatable {
    /// False when another sweeper ran within the interval.
    public let ran: Bool
    public let requeued: Int
    public let dead: Int

    public init(ran: Bool, requeued: Int, dead: Int) {
        self.ran = ran
        self.requeued = requeued
        self.dead = dead
    }
}

public struct QueueStats: Sendable, Codable, Equatable {
    public let queue: String
    public let ready: Int
    public let delayed: Int
    public let leased: Int
    public let dead: Int
    /// Age of the longest-waiting ready task, in milliseconds.
    public let oldestReadyAgeMs: Int64?
    public let paused: Bool
    public let totals: Totals

    public struct Totals: Sendable, Codable, Equatable {
        public let enqueued: Int
        public let acked: Int
        public let retried: Int
        public let dead: Int
        public let stalled: Int
    }

    enum CodingKeys: String, CodingKey {
        case queue, ready, delayed, leased, dead, paused, totals
        case oldestReadyAgeMs = "oldest_ready_age_ms"
    }
}

public struct DeadTask: Sendable, Codable, Equatable {
    public let id: String
    public let diedAtMs: Int64
    public let attempts: Int
    public let lastError: String
    public let payload: String

    enum CodingKeys: String, CodingKey {
        case id, attempts, payload
        case diedAtMs = "died_at_ms"
        case lastError = "last_error"
    }
}

public enum TaskQueueError: ActionableError, Equatable {
    case invalidArgument(field: String, message: String, fix: String)
    case redis(RedisError)
    case unexpectedReply(String)

    public var field: String? {
        if case .invalidArgument(let field, _, _) = self { return field }
        return nil
    }

    public var fix: String? {
        switch self {
        case .invalidArgument(_, _, let fix): fix
        case .redis(let error): error.fix
        case .unexpectedReply: nil
        }
    }

    public var description: String {
        switch self {
        case .invalidArgument(let field, let message, let fix): "\(field): \(message). Fix: \(fix)"
        case .redis(let error): error.description
        case .unexpectedReply(let text): "unexpected reply from a queue script: \(text)"
        }
    }
}

extension TaskQueueError: CarriesRedisError {
    public var redisError: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
