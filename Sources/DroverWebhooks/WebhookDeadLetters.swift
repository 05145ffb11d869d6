import DroverCore
import DroverQueue
import Foundation

/// Deliveries that ran out of attempts: the `webhooks` queue's dead-letter set, read as
/// deliveries. `drover webhooks dead` and the console's Webhooks page list them, and a retry
/// queues one again with its attempts reset (and its `webhook-id` unchanged).
public struct WebhookDeadLetters: Sendable {
    public struct Entry: Sendable, Equatable {
        public let taskID: String
        public let endpointID: String
        public let eventID: String
        public let type: String
        public let diedAtMs: Int64
        public let attempts: Int
        public let error: String

        public var json: JSONValue {
            .object([
                "task_id": .string(taskID), "endpoint_id": .string(endpointID), "event_id": .string(eventID), "type": .string(type),
                "died_at_ms": .number(Double(diedAtMs)), "attempts": .number(Double(attempts)), "error": .string(error),
            ])
        }
    }

    public let queue: TaskQueue

    public init(queue: TaskQueue) {
        self.queue = queue
    }

    /// Newest first; `endpoints`, when given, keeps those of these endpoints only.
    public func list(limit: Int = 20, endpoints: Set<String>? = nil) async throws -> [Entry] {
        try await queue.deadTasks(WebhookOutbox.queueName, limit: endpoints == nil ? limit : max(limit, 10_000)).compactMap { task in
            guard let delivery = WebhookDelivery.decode(task.payload), endpoints?.contains(delivery.endpointID) ?? true else { return nil }
            return Entry(
                taskID: task.id, endpointID: delivery.endpointID, eventID: delivery.eventID, type: delivery.type, diedAtMs: task.diedAtMs,
                attempts: task.attempts, error: task.lastError)
        }.prefix(limit).map { $0 }
    }

    /// False if it is not (or no longer) a dead delivery.
    public func retry(_ taskID: String) async throws -> Bool {
        try await queue.requeue(WebhookOutbox.queueName, taskId: taskID).requeued
    }
}
