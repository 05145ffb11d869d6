import DroverCore
import DroverDatabase
import DroverMetrics
import DroverRedis
import Foundation
import Logging

/// The scheduler role: while it holds the fenced leader lock, it fires every active
/// deployment's due occurrence. Any number can run; only the leader fires.
///
/// - A due occurrence is the latest one in `(last fired or created/unpaused, now − jitter]`:
///   after downtime, a deployment that missed several slots fires once, for the latest.
/// - A paused or archived deployment does not fire.
/// - An occurrence whose fire failed or stalled partway is redone, before any later one; if it
///   is no longer owed (paused or rescheduled since), only when it had created its session.
/// - The jitter delays each deployment's fires by a fixed amount, derived from its id.
public final class Scheduler: Sendable {
    public struct Options: Sendable {
        /// How often the scheduler checks for due occurrences and renews its lock.
        public var tick: Duration = .seconds(1)
        /// How long a leader that stopped renewing keeps the lock.
        public var lockTTL: Duration = .seconds(10)
        /// This scheduler's lock token.
        public var token: String = Identifier.make(prefix: "schd")
        public var keyPrefix = "drover:{sched}"
        public init() {}
    }

    public struct Fire: Sendable, Equatable {
        public let deploymentID: String
        public let scheduledAt: Date
        public let sessionID: String
    }

    public let lock: LeaderLock
    public let store: DeploymentStore
    public let firer: DeploymentFirer
    public let clock: any SchedulerClock
    public let options: Options
    let logger: Logger
    private let lease = Locked<Lease?>(nil)
    private let firedCount = Locked(0)

    /// The lock as this scheduler holds it. Redis starts the TTL when it runs the renewal, which
    /// is after `renewedAt` (when the renewal was sent), so the lock cannot lapse in Redis before
    /// `renewedAt + lockTTL`: the leader stops acting a margin before that.
    struct Lease {
        let epoch: Int64
        let renewedAt: ContinuousClock.Instant
    }

    public init(
        redis: RedisClient, store: DeploymentStore, firer: DeploymentFirer, clock: any SchedulerClock = SystemSchedulerClock(),
        options: Options = Options(), logger: Logger = Logger(label: "drover.scheduler")
    ) {
        let ttl = options.lockTTL.components
        self.lock = LeaderLock(
            redis: redis, token: options.token,
            ttlMilliseconds: Int(ttl.seconds * 1000 + ttl.attoseconds / 1_000_000_000_000_000), prefix: options.keyPrefix)
        self.store = store
        self.firer = firer
        self.clock = clock
        self.options = options
        self.logger = logger
    }

    /// The fence epoch while this scheduler leads: nil once its lock may have lapsed, although
    /// it has not ticked since.
    public var leaderEpoch: Int64? {
        lease.withLock { current in current.flatMap { isValid($0) ? $0.epoch : nil } }
    }
    /// Fires this scheduler committed.
    public var fires: Int { firedCount.value }

    /// A tenth of the TTL early, to absorb clock-rate drift between this host and Redis'.
    private func isValid(_ lease: Lease) -> Bool {
        ContinuousClock.now < lease.renewedAt + options.lockTTL - options.lockTTL / 10
    }

    private func holds(_ fence: Int64) -> Bool {
        lease.withLock { current in current.map { $0.epoch == fence && isValid($0) } ?? false }
    }

    private func dropLease() -> Bool {
        lease.withLock { value -> Bool in
            defer { value = nil }
            return value != nil
        }
    }

    /// Takes or renews the lock; the fence epoch if this scheduler leads.
    private func renew() async throws -> Int64? {
        let sentAt = ContinuousClock.now
        guard let fence = try await lock.acquireOrRenew() else {
            DroverMetrics.schedulerLeader.record(0)
            if dropLease() { logger.info("scheduler \(options.token) lost the lead") }
            return nil
        }
        DroverMetrics.schedulerLeader.record(1)
        let previous = lease.withLock { value -> Int64? in
            defer { value = Lease(epoch: fence, renewedAt: sentAt) }
            return value?.epoch
        }
        if previous != fence { logger.info("scheduler \(options.token) leads with epoch \(fence)") }
        return fence
    }

    /// Ticks until cancelled, then gives up the lock so another scheduler takes over at once.
    public func run() async throws {
        while !Task.isCancelled {
            do {
                _ = try await tick()
            } catch is CancellationError {
                break
            } catch {
                logger.warning("scheduler tick failed: \(error)")
            }
            do {
                try await Task.sleep(for: options.tick)
            } catch {
                break
            }
        }
        // The release must run although this task is cancelled; a task of its own is not.
        await Task { await self.stepDown() }.value
    }

    public func stepDown() async {
        if let held = lease.withLock({ value -> Int64? in
            defer { value = nil }
            return value?.epoch
        }) {
            try? await lock.release(epoch: held)
        }
        DroverMetrics.schedulerLeader.record(0)
    }

    /// One pass: take or renew the lock, then fire what is due. Returns the fires it committed.
    ///
    /// Exactly once, under any load: a fire is begun under the fence, its effects are
    /// idempotent (ids derive from the deployment and the occurrence), and it counts only once
    /// committed under the same fence. A leader that stalls past its TTL mid-fire is refused at
    /// the commit; the next leader redoes the occurrence onto the same session, run and task.
    /// An occurrence begun and not committed (the fire failed or stalled partway) is redone
    /// before a later one is considered, so no fire is left half done.
    @discardableResult
    public func tick() async throws -> [Fire] {
        guard let fence = try await renew() else { return [] }
        let now = clock.now()
        let fired = try await lock.fired()
        let pending = try await lock.pending()
        var result: [Fire] = []
        for row in try await store.list() where row.status == "active" {
            guard let spec = decodeSpec(row.spec), let cron = spec.cron() else { continue }
            let jitter = DeploymentSpec.jitter(deploymentID: row.id, maximum: spec.jitterSeconds)
            let done = fired[row.id].map(Double.init) ?? -.infinity
            var since = max(row.fireAfter, done)
            var owed: [Date] = []
            if let begun = pending[row.id] {
                let occurrence = Date(timeIntervalSince1970: Double(begun))
                let committed = Double(begun) <= done
                // Owed, or no longer owed (paused, or the schedule changed since) but far enough
                // along that its turn may run: then its run is recorded too.
                var owedStill = !committed && Double(begun) > since
                if !committed, !owedStill { owedStill = try await firer.started(row, occurrence: occurrence) }
                if owedStill {
                    owed.append(occurrence)
                    since = max(since, Double(begun))
                } else {
                    try await lock.dropPending(deployment: row.id, occurrence: begun)
                }
            }
            if let due = cron.latest(after: Date(timeIntervalSince1970: since), through: now - Double(jitter)) { owed.append(due) }
            occurrences: for due in owed {
                switch try await fire(row, due: due, fence: fence, now: now) {
                case .fired(let fire): result.append(fire)
                case .skipped: continue
                case .failed: break occurrences
                case .lostLead: return result
                }
            }
        }
        return result
    }

    enum Step {
        case fired(Fire)
        /// Another leader committed it, or the deployment was paused meanwhile.
        case skipped
        /// Not committed; the next tick redoes it before anything later of this deployment.
        case failed
        case lostLead
    }

    private func fire(_ row: DeploymentRow, due: Date, fence: Int64, now: Date) async throws -> Step {
        let occurrence = Int64(due.timeIntervalSince1970)
        // Renewed per fire, so a long list of due deployments cannot outrun the TTL.
        guard try await renew() == fence else { return .lostLead }
        switch try await lock.begin(deployment: row.id, occurrence: occurrence, epoch: fence) {
        case .duplicate:
            return .skipped
        case .stale(let current):
            _ = dropLease()
            logger.info("scheduler \(options.token) was superseded by epoch \(current); not firing")
            return .lostLead
        case .go:
            break
        }
        // A pause that landed since the list was read still stops the fire.
        guard try await store.find(row.id).status == "active" else { return .skipped }
        var stillLeads = holds(fence)
        if !stillLeads { stillLeads = try await renew() == fence }
        guard stillLeads else {
            logger.info("scheduler \(options.token) stalled past its lock; leaving \(row.name) to the next leader")
            return .lostLead
        }
        let run: JSONValue
        let outcome: LeaderLock.Finish
        do {
            run = try await firer.fire(row, scheduledAt: due, now: now)
            outcome = try await lock.finish(deployment: row.id, occurrence: occurrence, epoch: fence)
        } catch is CancellationError {
            throw CancellationError()
        } catch let deferred as DeploymentFirer.Deferred {
            // overlap: queue. Not fired, so the next tick tries it again; nothing to warn about.
            logger.debug("\(deferred)")
            DroverMetrics.schedulerFires("deferred").increment()
            return .failed
        } catch {
            // Not committed, so the next tick fires it again (idempotently); the other
            // deployments still fire now.
            logger.warning("firing \(row.name) for \(Timestamp.seconds(due)) failed: \(error)")
            DroverMetrics.schedulerFires("failed").increment()
            return .failed
        }
        switch outcome {
        case .committed:
            break
        case .duplicate:
            return .skipped
        case .stale(let current):
            _ = dropLease()
            logger.info("scheduler \(options.token) lost its lock while firing \(row.name); epoch \(current) owns \(Timestamp.seconds(due))")
            return .lostLead
        }
        let session = run.objectValue?["session_id"]?.stringValue ?? ""
        firedCount.withLock { $0 += 1 }
        if let error = run.objectValue?["error"]?.objectValue, let type = error["type"]?.stringValue, type != DeploymentFirer.overlapSkipped {
            // Every later fire would fail the same way: pause until someone fixes it.
            DroverMetrics.schedulerFires("failed_run").increment()
            logger.warning("\(row.name) for \(Timestamp.seconds(due)) recorded a failed run (\(error["message"]?.stringValue ?? type)); pausing it")
            do {
                try await store.pauseForError(row.id, errorType: type, now: now)
            } catch {
                // The run is recorded; the next occurrence fails the same way and pauses again.
                logger.warning("pausing \(row.name) failed: \(error)")
            }
            return .fired(Fire(deploymentID: row.id, scheduledAt: due, sessionID: ""))
        }
        let skipped = run.objectValue?["error"]?.objectValue != nil && run.objectValue?["batch_id"] == nil
        DroverMetrics.schedulerFires(skipped ? "skipped" : "fired").increment()
        if let batch = run.objectValue?["batch_id"]?.stringValue {
            logger.info("fired \(row.name) for \(Timestamp.seconds(due)) as batch \(batch)")
        } else if run.objectValue?["error"]?.objectValue != nil {
            logger.info("\(row.name) for \(Timestamp.seconds(due)) skipped: the previous batch is still running (overlap: skip)")
        } else {
            logger.info("fired \(row.name) for \(Timestamp.seconds(due)) as \(session)")
        }
        return .fired(Fire(deploymentID: row.id, scheduledAt: due, sessionID: session))
    }
}
