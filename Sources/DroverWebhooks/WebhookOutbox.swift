import DroverCore
import DroverDatabase
import DroverQueue
import Foundation

/// Turns what happened into deliveries: one task per interested endpoint on the `webhooks`
/// queue in Redis, Drover's own fenced task queue, so a delivery survives any crash, comes back
/// if its deliverer dies mid-request, is retried with backoff, and ends in the queue's
/// dead-letter set when its attempts run out.
///
/// An event that comes from the session log (a status change, which the recorder reads) has an
/// id made from the log event's, and so does its task: the recorder reading a batch again after
/// a crash queues nothing twice, and a delivery that is sent again carries the same `webhook-id`.
public struct WebhookOutbox: Sendable {
    public static let queueName = try! QueueName("webhooks")
    /// Stands in for the SDK's `organization_id`: Drover has workspaces and no organisations.
    public static let organizationID = "org_drover"

    public let database: MirrorDatabase
    public let queue: TaskQueue
    public let policy: WebhookRetryPolicy

    public init(database: MirrorDatabase, queue: TaskQueue, policy: WebhookRetryPolicy = WebhookRetryPolicy()) {
        self.database = database
        self.queue = queue
        self.policy = policy
    }

    /// Queues the event for each endpoint of the workspace that wants it. `source` names what
    /// it stands for (a log event id) and makes its id stable; nil gives a new id.
    @discardableResult
    public func emit(
        _ type: WebhookEventType, objectID: String, workspace: String, source: String? = nil, at date: Date = Date()
    ) async throws
        -> Int
    {
        try await emit(type, objectID: objectID, workspace: workspace, source: source, at: date, to: database.webhookEndpoints(workspace: workspace))
    }

    private func emit(
        _ type: WebhookEventType, objectID: String, workspace: String, source: String?, at date: Date, to candidates: [MirrorDatabase.WebhookEndpoint]
    ) async throws -> Int {
        let endpoints = candidates.filter { $0.workspace == workspace && $0.wants(type.rawValue) }
        guard !endpoints.isEmpty else { return 0 }
        let eventID = source.map { "wevt_" + Self.digest("\(type.rawValue) \($0)") } ?? Identifier.make(prefix: "wevt")
        let body = JSONValue.object([
            "id": .string(eventID), "type": .string("event"), "created_at": .string(ControlPlaneStore.timestamp(date)),
            "data": .object([
                "id": .string(objectID), "type": .string(type.rawValue), "organization_id": .string(Self.organizationID),
                "workspace_id": .string(workspace),
            ]),
        ]).compactJSON
        for endpoint in endpoints {
            let delivery = WebhookDelivery(endpointID: endpoint.id, eventID: eventID, type: type.rawValue, body: body)
            try await queue.enqueue(
                Self.queueName, payload: delivery.json, maxAttempts: policy.attempts,
                id: "task_wh_" + Self.digest("\(endpoint.id) \(eventID)"))
        }
        return endpoints.count
    }

    /// Queues the webhooks of a batch of log events the recorder has just committed. With no
    /// endpoint anywhere, that is one read of SQLite per batch.
    public func emit(logEvents events: [StoredEvent]) async throws {
        let statuses = events.filter { $0.type.hasPrefix("session.status_") }
        guard !statuses.isEmpty else { return }
        let endpoints = try await database.webhookEndpoints()
        guard !endpoints.isEmpty else { return }
        for event in statuses {
            let stopReason = JSONValue.decode(event.json).objectValue?["stop_reason"]?.objectValue?["type"]?.stringValue
            let types = WebhookEventType.forLogEvent(type: event.type, stopReason: stopReason)
            guard !types.isEmpty, let workspace = try await database.sessionWorkspace(event.session) else { continue }
            for type in types {
                try await emit(
                    type, objectID: event.session, workspace: workspace, source: event.id, at: MirrorDatabase.timestamp(event.processedAt) ?? Date(),
                    to: endpoints)
            }
        }
    }

    /// For `Recorder.Options.afterCommit`.
    public var recorderHook: @Sendable ([StoredEvent]) async throws -> Void {
        { [self] events in try await emit(logEvents: events) }
    }

    /// The first 26 hex digits of the text's SHA-256: an id part that repeats with its source.
    static func digest(_ text: String) -> String {
        String(ControlPlaneStore.hash(key: text).prefix(26))
    }
}

/// One delivery task's payload: which endpoint gets which event body. The body is fixed when
/// the event happens, so every attempt sends the same bytes.
public struct WebhookDelivery: Sendable, Codable, Equatable {
    public let endpointID: String
    public let eventID: String
    public let type: String
    public let body: String

    enum CodingKeys: String, CodingKey {
        case endpointID = "endpoint_id"
        case eventID = "event_id"
        case type, body
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func decode(_ json: String) -> WebhookDelivery? {
        try? JSONDecoder().decode(WebhookDelivery.self, from: Data(json.utf8))
    }
}

/// How long a delivery keeps being tried: the queue's full-jitter exponential backoff from
/// `base`, capped at `cap`, for `attempts` tries. The defaults (10 s, 4 h, 18) retry for about
/// a day (15 to 30 hours, depending on the jitter) before the delivery goes to the dead letters.
public struct WebhookRetryPolicy: Sendable, Equatable {
    public var base: Duration = .seconds(10)
    public var cap: Duration = .seconds(4 * 3600)
    public var attempts = 18
    /// One attempt's whole HTTP exchange.
    public var timeout: Duration = .seconds(10)

    public init() {}

    /// The queue options that make `fail` back off this way.
    public var queueOptions: TaskQueue.Options {
        var options = TaskQueue.Options()
        options.backoffBase = base
        options.backoffCap = cap
        return options
    }
}
