import DroverCore
import DroverQueue
import DroverRedis
import DroverSessionLog
import Foundation
import Logging
import Synchronization

/// Claims turn tasks and runs them: many sessions at once, nothing kept between turns.
///
/// Each claimed task's lease is heartbeated beside the turn; a lease that is lost cancels the
/// turn (the session's fence has moved on anyway). `drain()` stops claiming; turns still running
/// after the drain timeout are cancelled and their leases handed back, so that another worker
/// resumes them at once instead of after the lease expires.
public final class Worker: Sendable {
    public struct Options: Sendable {
        public var concurrency = 4
        public var leaseTTL: Duration = .seconds(30)
        public var queue = TurnQueue.defaultName
        public var workerId = "worker-\(ProcessInfo.processInfo.hostName)-\(getpid())"
        public var drainTimeout: Duration = .seconds(30)
        public init() {}
    }

    public let queue: TaskQueue
    public let runner: TurnRunner
    public let options: Options
    /// Starts and messages threads on this worker's queue; built once, not per turn.
    private let threads: ThreadMessenger
    /// When draining began plus the drain timeout; nil while not draining.
    private let drainDeadline = Locked<ContinuousClock.Instant?>(nil)
    private let logger = Logger(label: "drover.worker")

    public init(queue: TaskQueue, runner: TurnRunner, options: Options = Options()) {
        self.queue = queue
        self.runner = runner
        self.options = options
        threads = ThreadMessenger(inbox: SessionInbox(log: runner.log, queue: queue, turnQueue: options.queue))
    }

    /// Claims and runs turns, up to `concurrency` at once, until drained or cancelled.
    ///
    /// One claim loop serves every slot: it claims as many tasks as slots are free in one round
    /// trip, and only it waits on the queue. A loop per slot cost a Redis connection and a thread
    /// each (256 of both at `--concurrency 256`), and each enqueue woke two of them, one of which
    /// then claimed nothing.
    public func run() async throws {
        let slots = FreeSlots(options.concurrency)
        let finished = FinishedLeases()
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await claimLoop(slots: slots, finished: finished) { lease in
                    group.addTask {
                        let ended = await self.handle(lease)
                        slots.release()
                        if ended, finished.add(lease) { await finished.flush(to: self.queue) }
                    }
                }
            }
        } catch {
            await runner.interrupts.stop()
            throw error
        }
        let unacked = finished.takeAll()
        if !unacked.isEmpty {
            // In a task of its own, not cancelled with the worker: a turn that ended must not run
            // again for want of its ack.
            let queue = self.queue
            _ = await Task { try? await queue.ack(unacked) }.value
        }
        // No turn of this worker's is running now: its subscription goes, before the Redis it
        // listens to may.
        await runner.interrupts.stop()
    }

    /// Stops claiming new tasks. Turns in flight get `timeout` (by default the options'
    /// `drainTimeout`) to finish, then are cancelled and handed back.
    public func drain(timeout: Duration? = nil) {
        let deadline = ContinuousClock.now + (timeout ?? options.drainTimeout)
        drainDeadline.withLock { if $0 == nil { $0 = deadline } }
    }

    /// Claims while a slot is free and the worker is not draining, and hands each lease to `start`.
    ///
    /// Finished turns' leases are acked in the round trip that claims the next tasks, or, while
    /// a claim waits on a quiet queue, by the turns themselves (`FinishedLeases`). Kept until an
    /// ack succeeds: after a failed claim they are sent again, and a repeated ack is recognised.
    private func claimLoop(slots: FreeSlots, finished: FinishedLeases, start: (TaskLease) -> Void) async throws {
        // The owner keeps the `WORKER/` form: a batch run hands back every lease of its queue
        // whose owner does not start with its own worker id and a slash.
        let consumer = queue.consumer(options.queue, workerId: "\(options.workerId)/claims")
        defer { consumer.close() }
        var outage = RedisOutage("the worker's claims")
        while drainDeadline.value == nil {
            let free = await slots.waitForFree()
            guard drainDeadline.value == nil, !Task.isCancelled else { return }
            let acking = finished.startClaim()
            let leases: [TaskLease]
            do {
                leases = try await consumer.next(max: free, leaseTTL: options.leaseTTL, wait: .seconds(1), acking: acking)
                finished.endClaim()
                outage.recovered(logger: logger)
            } catch {
                finished.endClaim(unacked: acking)
                if error is CancellationError { return }
                guard RedisOutage.isOutage(error) else { throw error }
                do { try await outage.wait(after: error, logger: logger) } catch { return }
                continue
            }
            slots.take(leases.count)
            for lease in leases { start(lease) }
        }
    }

    private enum Ending: Sendable {
        case turn(TurnOutcome)
        case leaseLost(LeaseProblem)
        case drained
    }

    /// Runs the lease's turn. True when the turn ended and the lease is to be acked; every other
    /// ending (failed, released, lost) is settled here.
    func handle(_ lease: TaskLease) async -> Bool {
        guard let session = TurnQueue.session(from: lease.payload) else {
            _ = try? await queue.fail(lease, error: "payload has no valid session id: \(lease.payload.prefix(200))", retryable: false)
            return false
        }
        let fence: SessionFence
        do {
            fence = try await runner.log.takeFence(session, task: lease.taskId)
        } catch SessionLogError.sessionBusy {
            _ = try? await queue.release(lease, delay: .milliseconds(500))
            return false
        } catch SessionLogError.sessionNotFound {
            _ = try? await queue.fail(lease, error: "session \(session) does not exist", retryable: false)
            return false
        } catch {
            _ = try? await queue.fail(lease, error: "cannot take the session: \(error)", retryable: true)
            return false
        }
        let ending: Result<Ending, Error> = await withTaskGroup(of: Result<Ending, Error>?.self) { group in
            group.addTask {
                do {
                    return .success(.turn(try await self.runner.run(session: session, fence: fence, threads: self.threads)))
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                var held = lease
                let interval = self.options.leaseTTL / 3
                var nextBeat = ContinuousClock.now + interval
                // Wakes often enough to notice the drain deadline; heartbeats once per interval.
                while !Task.isCancelled {
                    try? await Task.sleep(for: min(interval, .milliseconds(200)))
                    if Task.isCancelled { return nil }
                    if let deadline = self.drainDeadline.value, ContinuousClock.now >= deadline { return .success(.drained) }
                    guard ContinuousClock.now >= nextBeat else { continue }
                    nextBeat = ContinuousClock.now + interval
                    if case .lost(let problem)? = try? await self.queue.heartbeat(&held, leaseTTL: self.options.leaseTTL) {
                        return .success(.leaseLost(problem))
                    }
                }
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first ?? .success(.drained)
        }
        switch ending {
        case .success(.turn(let outcome)):
            if outcome.ending == .awaitingHands || outcome.ending == .awaitingThreads {
                // The session stays running with no turn: the results' turn must not find it busy.
                try? await runner.log.releaseTurn(session, task: lease.taskId)
            }
            logger.debug(
                "turn done",
                metadata: ["session": "\(session)", "outcome": "\(outcome.ending)", "model_requests": "\(outcome.modelRequests)"])
            return true
        case .success(.leaseLost(let problem)):
            logger.warning("lease lost; turn abandoned", metadata: ["session": "\(session)", "problem": "\(problem.rawValue)"])
        case .success(.drained):
            logger.info("draining: turn handed back", metadata: ["session": "\(session)"])
            _ = try? await queue.release(lease)
        case .failure(SessionLogError.staleFence(_, let mine, let current)) where current < mine:
            // The epoch went back: Redis lost writes it had acknowledged (a crash within its AOF
            // fsync window), this fence's among them. Nobody else owns the session, so the turn is
            // handed back to be run again rather than left to wait out its lease.
            logger.warning(
                "the session's fence went back (Redis lost writes); turn handed back",
                metadata: ["session": "\(session)", "epoch": "\(mine)", "now": "\(current)"])
            _ = try? await queue.release(lease)
        case .failure(SessionLogError.staleFence):
            logger.warning("fenced out; another worker owns the session", metadata: ["session": "\(session)"])
        case .failure(let error as SessionLogError):
            _ = try? await queue.fail(lease, error: error.description, retryable: true)
        case .failure(is CancellationError):
            _ = try? await queue.release(lease)
        case .failure(let error):
            logger.error("turn failed", metadata: ["session": "\(session)", "error": "\(error)"])
            _ = try? await queue.fail(lease, error: "\(error)", retryable: true)
        }
        return false
    }
}

/// The worker's free slots, and the claim loop's wait for one.
private final class FreeSlots: Sendable {
    private struct State {
        var free: Int
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        state = Mutex(State(free: max(1, count)))
    }

    /// How many slots are free, once at least one is; at once if the task is cancelled.
    func waitForFree() async -> Int {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state in
                    guard state.free == 0, !Task.isCancelled else { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }?.resume()
        }
        return state.withLock { $0.free }
    }

    func take(_ count: Int) {
        state.withLock { $0.free -= count }
    }

    func release() {
        state.withLock { state in
            state.free += 1
            defer { state.waiter = nil }
            return state.waiter
        }?.resume()
    }
}

/// Leases of turns that ended, on their way to be acked: with the next claim when the claim loop
/// is about to send one (it waits for a free slot, which the ending turn has just given back),
/// or at once, by the turns that ended, while a claim is out waiting on a quiet queue. Left to
/// the next claim, those waited out the claim's wait, a second in which the queue still counted
/// them as running.
private final class FinishedLeases: Sendable {
    private struct State {
        var leases: [TaskLease] = []
        var claiming = false
        var flushing = false

        mutating func takeLeases() -> [TaskLease] {
            defer { leases = [] }
            return leases
        }
    }

    private let state = Mutex(State())

    /// For the claim loop: the leases to ack with this claim. The claim is out until `endClaim`.
    func startClaim() -> [TaskLease] {
        state.withLock { state in
            state.claiming = true
            return state.takeLeases()
        }
    }

    /// The claim is back; `unacked` are its leases when it failed, to go with the next.
    func endClaim(unacked: [TaskLease] = []) {
        state.withLock { state in
            state.claiming = false
            state.leases = unacked + state.leases
        }
    }

    /// A turn ended. True when its task is to `flush`: a claim is out, and nobody flushes yet.
    func add(_ lease: TaskLease) -> Bool {
        state.withLock { state in
            state.leases.append(lease)
            guard state.claiming, !state.flushing else { return false }
            state.flushing = true
            return true
        }
    }

    /// Acks what has gathered, until nothing has; turns that end meanwhile go in the next round.
    /// A failed ack leaves its leases for the next claim.
    func flush(to queue: TaskQueue) async {
        while true {
            let batch = state.withLock { state in
                if state.leases.isEmpty { state.flushing = false }
                return state.takeLeases()
            }
            guard !batch.isEmpty else { return }
            do {
                try await queue.ack(batch)
            } catch {
                state.withLock { state in
                    state.leases = batch + state.leases
                    state.flushing = false
                }
                return
            }
        }
    }

    func takeAll() -> [TaskLease] {
        state.withLock { $0.takeLeases() }
    }
}
