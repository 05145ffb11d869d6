import DroverCore
import DroverQueue

/// Turn tasks: one queued task per session at most, so a burst of messages gives one turn.
public enum TurnQueue {
    public static let defaultName = try! QueueName("turns")

    /// With a fixed `id`, enqueueing again while that task is queued, running or recently done
    /// (the queue's completed retention) adds nothing: a redone scheduled fire adds no turn.
    @discardableResult
    public static func enqueue(
        _ queue: TaskQueue, session: SessionID, name: QueueName = defaultName,
        id: String = Identifier.make(prefix: "task")
    ) async throws -> EnqueueResult {
        try await queue.enqueue(
            name, payload: "{\"session\":\"\(session.rawValue)\"}", dedupeKey: session.rawValue, maxAttempts: 5, maxStalls: 5, id: id)
    }

    static func session(from payload: String) -> SessionID? {
        guard case .string(let id)? = (try? JSONValue.parse(payload))?.objectValue?["session"] else { return nil }
        return try? SessionID(id)
    }
}
