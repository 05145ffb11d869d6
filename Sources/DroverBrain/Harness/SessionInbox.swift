import DroverCore
import DroverQueue
import DroverSessionLog

/// The one way events reach a session from outside its turn (the API, the CLI, schedules,
/// batches): they are appended to the log, then a turn is queued to answer them. Appending first
/// means a turn always finds what it was queued for; a turn queued while one is already queued
/// or running for the session is folded into it by the queue's dedupe key.
public struct SessionInbox: Sendable {
    public let log: SessionLog
    public let queue: TaskQueue
    public let turnQueue: QueueName

    public init(log: SessionLog, queue: TaskQueue, turnQueue: QueueName = TurnQueue.defaultName) {
        self.log = log
        self.queue = queue
        self.turnQueue = turnQueue
    }

    public struct Delivery: Sendable {
        public let appended: AppendResult
        /// nil when the events needed no turn.
        public let turn: EnqueueResult?
    }

    /// Appends `events` and queues a turn, unless none of them asks for one (`isTurnInput`): a
    /// running turn sees an interrupt in the log, an idle session has nothing to stop, and a
    /// thread's status cross-posted to its coordinator is a record, not input.
    ///
    /// - `clientKey`: makes a resent call (the same batch item, the same scheduled fire) append
    ///   nothing the second time.
    /// - `turnID`: a fixed task id makes queueing the turn again a no-op as well.
    @discardableResult
    public func send(
        _ events: [NewEvent], to session: SessionID, clientKey: String? = nil,
        turnID: String = Identifier.make(prefix: "task")
    ) async throws -> Delivery {
        let appended = try await log.append(session, events, clientKey: clientKey)
        guard events.contains(where: { $0.type.isTurnInput }) else { return Delivery(appended: appended, turn: nil) }
        let turn = try await TurnQueue.enqueue(queue, session: session, name: turnQueue, id: turnID)
        return Delivery(appended: appended, turn: turn)
    }

    /// `send(_:to:clientKey:turnID:)` for typed events.
    @discardableResult
    public func send(
        _ payloads: [SessionEventPayload], to session: SessionID, clientKey: String? = nil,
        turnID: String = Identifier.make(prefix: "task")
    ) async throws -> Delivery {
        try await send(payloads.map(NewEvent.init), to: session, clientKey: clientKey, turnID: turnID)
    }
}
