import DroverCore
import DroverRedis

/// A unit of work of a self-hosted environment: one session whose tools a worker on the user's
/// own machine runs (the SDK's `BetaSelfHostedWork`).
public struct WorkItem: Sendable, Equatable {
    public enum State: String, Sendable {
        case queued, starting, active, stopping, stopped
        /// The lease ran out while a worker held it; the calls it was running are being
        /// answered with errors before the item goes back in line. Shown as `queued`.
        case lapsed

        /// The state as the SDK knows it.
        public var wire: String { self == .lapsed ? State.queued.rawValue : rawValue }
    }

    public let id: String
    public let environmentID: String
    public let sessionID: String
    public let state: State
    public let createdAt: String
    public let acknowledgedAt: String?
    public let startedAt: String?
    public let latestHeartbeatAt: String?
    public let stopRequestedAt: String?
    public let stoppedAt: String?
    public let metadata: [String: String]
    /// Times a lease on it was lost: polled and never acknowledged, or a worker that went quiet.
    public let reclaims: Int

    init?(fields: [String: String]) {
        guard let id = fields["id"], let environment = fields["environment"], let session = fields["session"],
            let state = fields["state"].flatMap(State.init(rawValue:)), let created = fields["created_at"]
        else { return nil }
        func time(_ name: String) -> String? { fields[name].flatMap { $0.isEmpty ? nil : $0 } }
        self.id = id
        self.environmentID = environment
        self.sessionID = session
        self.state = state
        self.createdAt = created
        self.acknowledgedAt = time("acknowledged_at")
        self.startedAt = time("started_at")
        self.latestHeartbeatAt = time("last_heartbeat")
        self.stopRequestedAt = time("stop_requested_at")
        self.stoppedAt = time("stopped_at")
        var metadata: [String: String] = [:]
        if let text = fields["metadata"], case .object(let object)? = try? JSONValue.parse(text) {
            for (key, value) in object { if let string = value.stringValue { metadata[key] = string } }
        }
        self.metadata = metadata
        self.reclaims = Int(fields["reclaims"] ?? "") ?? 0
    }
}

/// The server's view of a lease, returned by a heartbeat.
public struct WorkLease: Sendable, Equatable {
    public let state: WorkItem.State
    /// The heartbeat the server holds; empty when there has been none.
    public let lastHeartbeat: String
    public let extended: Bool
    public let ttlSeconds: Int
}

public enum HeartbeatOutcome: Sendable, Equatable {
    case recorded(WorkLease)
    /// `expected_last_heartbeat` was not the server's, or the lease is no longer held: another
    /// worker may hold it, and this one must stop serving the session.
    case preconditionFailed(WorkLease)
    case notFound
}

public enum WorkTransition: Sendable, Equatable {
    case done(WorkItem.State)
    /// The item's state does not allow it (`ack` of a queued item, `stop` of a stopped one).
    case conflict(WorkItem.State)
    case notFound
}

public struct WorkQueueStats: Sendable, Equatable {
    public let depth: Int
    public let pending: Int
    public let oldestQueuedAt: String?
    public let workersPolling: Int
}

public enum WorkQueueError: ActionableError {
    case redis(RedisError)
    case unexpectedReply(String)

    public var field: String? { nil }
    public var fix: String? {
        if case .redis(let error) = self { return error.fix }
        return nil
    }
    public var description: String {
        switch self {
        case .redis(let error): error.description
        case .unexpectedReply(let text): "unexpected reply from a work-queue script: \(text)"
        }
    }
}

extension WorkQueueError: CarriesRedisError {
    public var redisError: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
