import DroverBrain
import DroverCore
import DroverDatabase
import DroverRedis
import DroverSessionLog
import Foundation
import Logging

/// Waits for a session's turn to end by reading its log: the batch runner never talks to the
/// worker that runs the turn, only to the log (so any worker, in any process, can run it).
struct TurnWatcher {
    enum Ending: Sendable {
        /// The session went idle with this stop reason.
        case idle(StopReason)
        case terminated
        case timedOut
    }

    let log: SessionLog
    var notifier: SessionSettleNotifier?

    /// How a turn whose events these are ended: the last idle or terminated status among
    /// them; nil while it has not.
    static func ending(of events: [StoredEvent]) -> Ending? {
        guard let end = events.last(where: { $0.kind == .sessionStatusIdle || $0.kind == .sessionStatusTerminated }) else { return nil }
        guard case .sessionStatusIdle(let idle)? = end.payload else { return .terminated }
        return .idle(idle.stopReason)
    }

    /// Every event after `afterSeq` until the session goes idle or is terminated, or until
    /// `deadline`. Between reads it waits for the notifier's hint that the session may have
    /// settled (or, without one, polls with a growing interval).
    func wait(_ session: SessionID, afterSeq: Int64, deadline: ContinuousClock.Instant) async throws -> (Ending, [StoredEvent]) {
        var events: [StoredEvent] = []
        var cursor = afterSeq
        var interval = 0.02
        while true {
            // A cancelled waiter must not spin: the notifier returns at once for it.
            try Task.checkCancellation()
            let batch = try await log.read(session, afterSeq: cursor, limit: 1000)
            events += batch
            cursor = batch.last?.seq ?? cursor
            if let ending = Self.ending(of: batch) { return (ending, events) }
            if batch.count == 1000 { continue }
            let remaining = (deadline - ContinuousClock.now).seconds
            if remaining <= 0 { return (.timedOut, events) }
            if let notifier {
                await notifier.settled(session, pastSeq: cursor, within: min(remaining, 5))
            } else {
                try await Task.sleep(for: .seconds(min(interval, remaining)))
                interval = min(interval * 1.5, 0.25)
            }
        }
    }
}

/// Wakes a waiter when its session may have settled (gone idle or terminated past the seq it
/// has read). A hint, not a verdict: the waiter reads the log to see whether the turn ended.
///
/// The append script publishes every settle on `SessionLog.settledChannel`; one subscription
/// hears them all. Pub/sub delivers at most once (a reconnect loses what was sent meanwhile), so
/// a waiter's session is also read once when it starts waiting and then once a second with all
/// the others, in one pipelined read: a lost message costs at most a second.
actor SessionSettleNotifier {
    private struct Waiter {
        let session: SessionID
        let pastSeq: Int64
        let continuation: CheckedContinuation<Void, Never>
        let deadline: ContinuousClock.Instant
    }

    private let log: SessionLog
    private let safetyPoll: Duration
    private var waiters: [UUID: Waiter] = [:]
    private var polling: Task<Void, Never>?
    private var listening: Task<Void, Never>?

    init(log: SessionLog, safetyPoll: Duration = .seconds(1)) {
        self.log = log
        self.safetyPoll = safetyPoll
    }

    /// Returns when the session has settled past `pastSeq`, or after `within` seconds.
    func settled(_ session: SessionID, pastSeq: Int64, within seconds: Double) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[id] = Waiter(session: session, pastSeq: pastSeq, continuation: continuation, deadline: .now + .seconds(seconds))
                if listening == nil { listening = Task { await self.listen() } }
                if polling == nil { polling = Task { await self.poll() } }
                // It may have settled before the waiter was in place to hear it.
                Task { await self.check([id]) }
            }
        } onCancel: {
            Task { await self.resume(id) }
        }
    }

    private func resume(_ id: UUID) {
        waiters.removeValue(forKey: id)?.continuation.resume()
    }

    /// Ends the subscription and the poll now, rather than a few seconds after the last wait:
    /// the runner calls it when the batch is over, before the Redis it listens to may go away.
    func stop() {
        polling?.cancel()
        polling = nil
        listening?.cancel()
        listening = nil
        for id in Array(waiters.keys) { resume(id) }
    }

    private func heard(_ session: String) {
        for (id, waiter) in waiters where waiter.session.rawValue == session { resume(id) }
    }

    /// Reads the named waiters' sessions in one round trip and wakes those settled (or gone).
    private func check(_ ids: [UUID]) async {
        let pending = ids.compactMap { id in waiters[id].map { (id, $0) } }
        guard !pending.isEmpty else { return }
        let metas = (try? await log.metas(pending.map { $0.1.session })) ?? Array(repeating: nil, count: pending.count)
        let now = ContinuousClock.now
        for ((id, waiter), meta) in zip(pending, metas) {
            let settled = meta.map { ($0.status == "idle" || $0.status == "terminated") && $0.lastSeq > waiter.pastSeq } ?? true
            if settled || now >= waiter.deadline { resume(id) }
        }
    }

    /// The safety net, and the deadlines. Ends (and ends the subscription) once nobody has
    /// waited for a while, so that a runner between items does not subscribe again each time.
    private func poll() async {
        var idleSince: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = ContinuousClock.now
            if waiters.isEmpty {
                if let since = idleSince, now - since >= safetyPoll * 3 { break }
                idleSince = idleSince ?? now
            } else {
                idleSince = nil
            }
            let earliest = waiters.values.map(\.deadline).min() ?? now + safetyPoll
            let wait = max(.milliseconds(1), min(safetyPoll, earliest - now))
            try? await Task.sleep(for: wait)
            await check(Array(waiters.keys))
        }
        // Stopped: `stop()` has cleared both already, and a wait begun since may own new ones.
        if Task.isCancelled { return }
        polling = nil
        listening?.cancel()
        listening = nil
    }

    private func listen() async {
        let connection = log.redis.blockingConnection(name: "settled")
        defer { connection.close() }
        var subscribed = false
        var outage = RedisOutage("the batch's settle subscription")
        while !Task.isCancelled {
            do {
                if !subscribed {
                    try await connection.send(["SUBSCRIBE", SessionLog.settledChannel])
                    subscribed = true
                }
                let message = try await connection.receive()
                outage.recovered(logger: Self.logger)
                guard let parts = message.array, parts.count == 3, parts[0].string == "message", let session = parts[2].string else { continue }
                heard(session)
            } catch {
                // Whatever broke the subscription, the poll keeps waiters moving meanwhile.
                subscribed = false
                guard !Task.isCancelled else { return }
                try? await outage.wait(after: error, logger: Self.logger)
            }
        }
    }

    private static let logger = Logger(label: "drover.batch")
}

/// Usage and the final message, read from a session's events. Tokens come from every model
/// request and active time from the running status, as `drover report usage` counts them, so
/// a turn cut off by a timeout still counts what it spent.
struct TurnReading {
    var finalMessage: String?
    var inputTokens = 0
    var outputTokens = 0
    var activeSeconds = 0.0
    var lastError: String?

    init(_ events: [StoredEvent]) {
        var runningSince: Date?
        for event in events {
            switch event.payload {
            case .agentMessage(let message)?:
                finalMessage = message.text
            case .spanModelRequestEnd(let end)?:
                inputTokens += end.modelUsage.inputTokens
                outputTokens += end.modelUsage.outputTokens
            case .sessionStatusRunning?:
                if runningSince == nil { runningSince = MirrorDatabase.timestamp(event.processedAt) }
            case .sessionStatusIdle?, .sessionStatusTerminated?, .sessionStatusRescheduled?:
                if let since = runningSince, let at = MirrorDatabase.timestamp(event.processedAt) {
                    activeSeconds += max(0, at.timeIntervalSince(since))
                }
                runningSince = nil
            case .sessionError(let error)?:
                lastError = error.error.message
            default:
                break
            }
        }
    }
}
