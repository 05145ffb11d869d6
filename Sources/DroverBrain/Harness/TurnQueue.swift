import DroverCore
import DroverStore

/// Turn tasks: one queued task per session at most, so a burst of messages gives one turn.
public enum TurnQueue {
    public static let defaultName = try! QueueName("turns")

    @discardableResult
    public static func enqueue(_ queue: TaskQueue, session: SessionID, name: QueueName = defaultName) async throws -> EnqueueResult {
        try await queue.enqueue(name, payload: "{\"session\":\"\(session.rawValue)\"}", dedupeKey: session.rawValue, maxAttempts: 5, maxStalls: 5)
    }

    static func session(from payload: String) -> SessionID? {
        guard case .string(let id)? = (try? JSONValue.parse(payload))?.objectValue?["session"] else { return nil }
        return try? SessionID(id)
    }
}
