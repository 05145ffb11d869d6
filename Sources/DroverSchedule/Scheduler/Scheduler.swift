import DroverCore
import DroverStore
import Foundation
import Logging

/// The scheduler role: while it holds the fenced leader lock, it fires every active
/// deployment's due occurrence. Any number can run; only the leader fires.
///
/// - A due occurrence is the latest one in `(last fired or created/unpaused, now − jitter]`:
///   after downtime, a deployment that missed several slots fires once, for the latest.
/// - A paused or archived deployment does not fire.
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
    private let epoch = Locked<Int64?>(nil)
    private let firedCount = Locked(0)

    public init(redis: RedisClient, store: DeploymentStore, firer: DeploymentFirer, clock: any SchedulerClock = SystemSchedulerClock(),
                options: Options = Options(), logger: Logger = Logger(label: "drover.scheduler")) {
        let ttl = options.lockTTL.components
        self.lock = LeaderLock(redis: redis, token: options.token,
                               ttlMilliseconds: Int(ttl.seconds * 1000 + ttl.attoseconds / 1_000_000_000_000_000), prefix: options.keyPrefix)
        self.store = store
        self.firer = firer
        self.clock = clock
        self.options = options
        self.logger = logger
    }

    /// The fence epoch while this scheduler leads.
    public var leaderEpoch: Int64? { epoch.value }
    public var fires: Int { firedCount.value }

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
        if let held = epoch.withLock({ value -> Int64? in defer { value = nil }; return value }) {
            try? await lock.release(epoch: held)
        }
    }

    /// One pass: take or renew the lock, then fire what is due. Returns what it fired.
    @discardableResult
    public func tick() async throws -> [Fire] {
        guard let fence = try await lock.acquireOrRenew() else {
            if epoch.withLock({ value -> Bool in defer { value = nil }; return value != nil }) {
                logger.info("scheduler \(options.token) lost the lead")
            }
            return []
        }
        if epoch.withLock({ value -> Bool in defer { value = fence }; return value != fence }) {
            logger.info("scheduler \(options.token) leads with epoch \(fence)")
        }
        let now = clock.now()
        let fired = try await lock.fired()
        var result: [Fire] = []
        for row in try await store.list() where row.status == "active" {
            guard let spec = decodeSpec(row.spec), let cron = spec.cron() else { continue }
            let jitter = DeploymentSpec.jitter(deploymentID: row.id, maximum: spec.jitterSeconds)
            let since = max(row.fireAfter, fired[row.id].map(Double.init) ?? -.infinity)
            guard let due = cron.latest(after: Date(timeIntervalSince1970: since), through: now - Double(jitter)) else { continue }
            let occurrence = Int64(due.timeIntervalSince1970)
            switch try await lock.begin(deployment: row.id, occurrence: occurrence, epoch: fence) {
            case .duplicate:
                continue
            case .stale(let current):
                epoch.withLock { $0 = nil }
                logger.info("scheduler \(options.token) was superseded by epoch \(current); not firing")
                return result
            case .go:
                break
            }
            // A pause that landed since the list was read still stops the fire.
            guard try await store.find(row.id).status == "active" else { continue }
            let run: JSONValue
            do {
                run = try await firer.fire(row, scheduledAt: due, now: now)
                try await lock.finish(deployment: row.id, occurrence: occurrence)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // Not marked done, so the next tick fires it again (idempotently); the other
                // deployments still fire now.
                logger.warning("firing \(row.name) for \(Timestamp.seconds(due)) failed: \(error)")
                continue
            }
            let session = run.objectValue?["session_id"]?.stringValue ?? ""
            result.append(Fire(deploymentID: row.id, scheduledAt: due, sessionID: session))
            firedCount.withLock { $0 += 1 }
            logger.info("fired \(row.name) for \(Timestamp.seconds(due)) as \(session)")
        }
        return result
    }
}
