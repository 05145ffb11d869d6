import DroverCore
import DroverRedis
import Foundation
import Logging

/// Wakes tasks waiting for something to happen to a session (its turn settled, a user
/// interrupted it), with one pub/sub subscription for all of them instead of a connection or a
/// poll per waiter.
///
/// The append script publishes the session id on `channel` when the thing happens. A message is
/// a hint, not a verdict: waiters are woken when `check` says so, and pub/sub delivers at most
/// once (a reconnect loses what was sent meanwhile), so every waiter is also checked once when it
/// starts waiting (waits that begin together, together), and all of them together once per
/// `safetyPoll`, in one round trip. A lost message costs at most one safety poll.
public actor SessionSignal {
    /// Whether each (session, past seq) has seen the signal; one answer per pair, in order.
    public typealias Check = @Sendable ([(session: SessionID, pastSeq: Int64)]) async -> [Bool]

    private struct Waiter {
        let session: SessionID
        let pastSeq: Int64
        let continuation: CheckedContinuation<Void, Never>
        let deadline: ContinuousClock.Instant?
    }

    private let redis: RedisClient
    private let channel: String
    private let safetyPoll: Duration
    private let check: Check
    private var waiters: [UUID: Waiter] = [:]
    /// Waiters not yet checked since they began, and whether a check of them is under way:
    /// waits that begin together are checked together, in one round trip.
    private var unchecked: [UUID] = []
    private var checkingNew = false
    private var polling: Task<Void, Never>?
    private var listening: Task<Void, Never>?

    public init(redis: RedisClient, channel: String, safetyPoll: Duration = .seconds(1), check: @escaping Check) {
        self.redis = redis
        self.channel = channel
        self.safetyPoll = safetyPoll
        self.check = check
    }

    /// Returns once `check` finds the signal for `session` past `pastSeq`, after `within` (if
    /// given), or when the calling task is cancelled. The caller tells which by looking.
    public func wait(_ session: SessionID, pastSeq: Int64, within: Duration? = nil) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[id] = Waiter(session: session, pastSeq: pastSeq, continuation: continuation, deadline: within.map { .now + $0 })
                if listening == nil { listening = Task { await self.listen() } }
                if polling == nil { polling = Task { await self.poll() } }
                // The signal may have come before the waiter was in place to hear it.
                checkSoon([id])
            }
        } onCancel: {
            Task { await self.resume(id) }
        }
    }

    /// Ends the subscription and the poll now, rather than a few seconds after the last wait,
    /// and wakes every waiter: for an owner that is done, before the Redis it listens to may go.
    public func stop() {
        polling?.cancel()
        polling = nil
        listening?.cancel()
        listening = nil
        for id in Array(waiters.keys) { resume(id) }
    }

    private func resume(_ id: UUID) {
        waiters.removeValue(forKey: id)?.continuation.resume()
    }

    /// A publication's waiters are checked at once, one publication at a time. Waking them as
    /// the messages come, without the check, measured cheaper per item but slower per batch in
    /// `drover bench batch`: the woken runners' next items queued up together.
    private func heard(_ session: String) async {
        await checkWaiters(waiters.filter { $0.value.session.rawValue == session }.map(\.key))
    }

    /// Checks new waiters soon, with any others waiting for their first check: one round trip
    /// for all.
    private func checkSoon(_ ids: [UUID]) {
        unchecked += ids
        if !checkingNew {
            checkingNew = true
            Task { await self.checkNewWaiters() }
        }
    }

    private func checkNewWaiters() async {
        while !unchecked.isEmpty {
            let ids = unchecked
            unchecked = []
            await checkWaiters(ids)
        }
        checkingNew = false
    }

    /// Checks the named waiters in one call and wakes those signalled or past their deadline.
    private func checkWaiters(_ ids: [UUID]) async {
        let pending = ids.compactMap { id in waiters[id].map { (id, $0) } }
        guard !pending.isEmpty else { return }
        let answers = await check(pending.map { (session: $0.1.session, pastSeq: $0.1.pastSeq) })
        let now = ContinuousClock.now
        for (index, (id, waiter)) in pending.enumerated() {
            let signalled = index < answers.count && answers[index]
            if signalled || waiter.deadline.map({ now >= $0 }) == true { resume(id) }
        }
    }

    /// The safety net, and the deadlines. Ends (and ends the subscription) once nobody has
    /// waited for a while, so that an owner between waits does not subscribe again each time.
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
            let earliest = waiters.values.compactMap(\.deadline).min() ?? now + safetyPoll
            let wait = max(.milliseconds(1), min(safetyPoll, earliest - now))
            try? await Task.sleep(for: wait)
            await checkWaiters(Array(waiters.keys))
        }
        // Stopped: `stop()` has cleared both already, and a wait begun since may own new ones.
        if Task.isCancelled { return }
        polling = nil
        listening?.cancel()
        listening = nil
    }

    private func listen() async {
        let connection = redis.blockingConnection(name: "signal")
        defer { connection.close() }
        var subscribed = false
        var outage = RedisOutage("the subscription to \(channel)")
        while !Task.isCancelled {
            do {
                if !subscribed {
                    try await connection.send(["SUBSCRIBE", channel])
                    subscribed = true
                    // What was published while unsubscribed is lost: look at everyone now.
                    await checkWaiters(Array(waiters.keys))
                }
                let message = try await connection.receive()
                outage.recovered(logger: Self.logger)
                guard let parts = message.array, parts.count == 3, parts[0].string == "message", let session = parts[2].string else { continue }
                await heard(session)
            } catch {
                // Whatever broke the subscription, the poll keeps waiters moving meanwhile.
                subscribed = false
                guard !Task.isCancelled else { return }
                // Nobody waits: the subscription goes quietly (its Redis may have been stopped on
                // purpose), and the next wait starts another.
                if waiters.isEmpty {
                    listening = nil
                    return
                }
                try? await outage.wait(after: error, logger: Self.logger)
            }
        }
    }

    private static let logger = Logger(label: "drover.session-signal")
}

extension SessionSignal {
    /// Hears a session's turn settle: it went idle or was terminated past the seq, or is gone.
    public static func settled(_ log: SessionLog, safetyPoll: Duration = .seconds(1)) -> SessionSignal {
        SessionSignal(redis: log.redis, channel: SessionLog.settledChannel, safetyPoll: safetyPoll) { waits in
            guard let metas = try? await log.metas(waits.map(\.session)) else { return [] }
            return zip(waits, metas).map { wait, meta in
                meta.map { ($0.status == "idle" || $0.status == "terminated") && $0.lastSeq > wait.pastSeq } ?? true
            }
        }
    }

    /// Hears a `user.interrupt` appended to a session past the seq.
    public static func interrupted(_ log: SessionLog, safetyPoll: Duration = .seconds(1)) -> SessionSignal {
        SessionSignal(redis: log.redis, channel: SessionLog.interruptedChannel, safetyPoll: safetyPoll) { waits in
            guard let seqs = try? await log.interruptSeqs(waits.map(\.session)) else { return [] }
            return zip(waits, seqs).map { wait, seq in (seq ?? 0) > wait.pastSeq }
        }
    }
}
