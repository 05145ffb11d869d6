import DroverBrain
import DroverCore
import DroverDatabase
import DroverRedis
import DroverSessionLog
import Foundation

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
    /// Hears turns settle (`SessionSignal.settled`); without it, the watcher polls.
    var notifier: SessionSignal?

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
        /// Hears from the notifier, for at most five seconds and never past the deadline.
        func hear(_ notifier: SessionSignal, remaining: Double) async {
            await notifier.wait(session, pastSeq: cursor, within: .seconds(min(remaining, 5)))
        }
        // A turn queued a moment ago has not ended yet: the first read waits for the notifier,
        // whose first check finds a turn that has, instead of finding nothing.
        if let notifier, deadline > .now { await hear(notifier, remaining: (deadline - .now).seconds) }
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
                await hear(notifier, remaining: remaining)
            } else {
                try await Task.sleep(for: .seconds(min(interval, remaining)))
                interval = min(interval * 1.5, 0.25)
            }
        }
    }
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
            // By type first: only the events read here are decoded (the prompt, tool calls and
            // their results are not).
            switch event.kind {
            case .agentMessage?:
                if case .agentMessage(let message)? = event.payload { finalMessage = message.text }
            case .spanModelRequestEnd?:
                if case .spanModelRequestEnd(let end)? = event.payload {
                    inputTokens += end.modelUsage.inputTokens
                    outputTokens += end.modelUsage.outputTokens
                }
            case .sessionStatusRunning?:
                if runningSince == nil { runningSince = MirrorDatabase.timestamp(event.processedAt) }
            case .sessionStatusIdle?, .sessionStatusTerminated?, .sessionStatusRescheduled?:
                if let since = runningSince, let at = MirrorDatabase.timestamp(event.processedAt) {
                    activeSeconds += max(0, at.timeIntervalSince(since))
                }
                runningSince = nil
            case .sessionError?:
                if case .sessionError(let error)? = event.payload { lastError = error.error.message }
            default:
                break
            }
        }
    }
}
