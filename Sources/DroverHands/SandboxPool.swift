import DroverCore
import DroverEgress
import DroverFileStore
import DroverMetrics
import DroverTools
import Foundation

public struct SandboxPoolSettings: Sendable {
    /// Warm sandboxes kept ready per environment configuration.
    public var warmPerConfiguration = 2
    /// Live sandboxes at most, warm and assigned together; past it the least recently used idle
    /// one is evicted.
    public var capacity = 64
    /// A sandbox nobody called for this long is ended (its workspace stays on disk).
    public var idleTimeToLive: Duration = .seconds(600)
    public var limits = SandboxLimits()
    /// Extra `pip install` arguments for package layers (see `PackageLayers.pipOptions`).
    public var pipOptions: [String] = []
    /// How the egress proxy decides connections: its resolver and the endpoints of Drover's own
    /// (API, Redis) that no sandbox may reach whatever its policy.
    public var egressGate = EgressGate()
    /// The installation's egress authority: with one, requests to a credential's hosts are read
    /// so that its placeholder can be replaced (see `EgressAuthority`); without, credentials of
    /// type environment_variable cannot be used, and every HTTPS connection is a tunnel.
    public var egressAuthority: EgressAuthority?
    /// Where a session's starting files and added files come from (the file store in Redis, which
    /// every host reaches); nil for a pool whose sessions have none.
    public var sessionFiles: SessionFiles?

    public init() {}
}

public struct SandboxPoolStats: Sendable, Equatable {
    /// Started and bound to a fresh workspace, waiting for a session.
    public let warm: Int
    /// Assigned to a session (sticky until evicted or released).
    public let inUse: Int
    /// Being provisioned now.
    public let provisioning: Int
    /// Sandboxes ended for idleness or for the capacity, since the pool started.
    public let evicted: Int
    /// From making the volume and spawning bubblewrap to the shell's first answer, package
    /// layers excluded.
    public let provisionTime: LatencyHistogram
}

/// Live sandboxes, keyed by environment configuration, sticky per session.
///
/// A warm sandbox is already running, on the volume `workspaces/.warm-ID` (see `HandsLayout`). A
/// session's checkout copies in the files staged for it, renames that directory to
/// `workspaces/SESSION` (the mount and the bind mounts follow the directory), and refills the
/// configuration's warm set in the background. A session that comes back after its sandbox was
/// evicted gets a new sandbox on its own volume instead.
public actor SandboxPool {
    public nonisolated let root: URL
    public nonisolated let settings: SandboxPoolSettings
    public nonisolated let layers: PackageLayers
    public nonisolated let layout: HandsLayout
    private struct Assignment {
        let sandbox: Sandbox
        let key: String
        var checkedOut: ContinuousClock.Instant
    }
    private struct Warm {
        let sandbox: Sandbox
        let name: String
        let born: ContinuousClock.Instant
    }
    private var warm: [String: [Warm]] = [:]
    private var assigned: [SessionID: Assignment] = [:]
    private var pending: [SessionID: Task<Sandbox, Error>] = [:]
    private var provisioning = 0
    private var evicted = 0
    private var histogram = LatencyHistogram()
    private var sweeper: Task<Void, Never>?
    /// Made with the first sandbox that has a network policy.
    private var station: EgressStation?

    /// `root` holds `workspaces/` and `layers/` (see `HandsLayout`).
    public init(root: URL, settings: SandboxPoolSettings = SandboxPoolSettings()) {
        self.root = root.standardizedFileURL
        self.settings = settings
        layout = HandsLayout(root: self.root, diskBytes: settings.limits.diskBytes)
        layers = PackageLayers(directory: layout.layersDirectory, pipOptions: settings.pipOptions, egressGate: settings.egressGate)
    }

    deinit { sweeper?.cancel() }

    public nonisolated func workspace(_ session: SessionID) -> URL {
        layout.workspace(session.rawValue)
    }

    public nonisolated func shellState(_ session: SessionID) -> URL {
        layout.shellState(session.rawValue)
    }

    public struct Full: Error, CustomStringConvertible {
        public let capacity: Int
        public var description: String {
            "all \(capacity) sandboxes of this worker are running calls; retry later, or raise the pool's capacity"
        }
    }

    public var stats: SandboxPoolStats {
        SandboxPoolStats(
            warm: warm.values.reduce(0) { $0 + $1.count }, inUse: assigned.count, provisioning: provisioning,
            evicted: evicted, provisionTime: histogram)
    }

    /// The session's sandbox: its own if it has one (sticky), else a warm one of its
    /// configuration, else a new one. Waits only for this session's sandbox.
    public func checkout(_ session: SessionID, environment: EnvironmentConfig = .none) async throws -> Sandbox {
        await startSweeper()
        if var assignment = assigned[session] {
            assignment.checkedOut = .now
            assigned[session] = assignment
            return assignment.sandbox
        }
        if let running = pending[session] { return try await running.value }
        let task = Task { try await self.acquire(session, environment) }
        pending[session] = task
        defer { pending[session] = nil }
        return try await task.value
    }

    /// Fills the configuration's warm set in the background (for example at worker start).
    public func prewarm(_ environment: EnvironmentConfig = .none) async {
        await startSweeper()
        refill(environment)
    }

    /// Ends the session's sandbox; its workspace and shell state stay on disk.
    public func release(_ session: SessionID) async {
        guard let assignment = assigned.removeValue(forKey: session) else { return }
        await close(session, assignment)
    }

    /// Ends every sandbox, warm or assigned.
    public func shutdown() async {
        isShutDown = true
        sweeper?.cancel()
        for provision in warmTasks.values { await provision.task.value }
        for (session, assignment) in assigned { await close(session, assignment) }
        assigned = [:]
        for list in warm.values {
            for entry in list { await close(entry) }
        }
        warm = [:]
        await station?.shutdown()
        await layers.shutdown()
    }

    private func acquire(_ session: SessionID, _ environment: EnvironmentConfig) async throws -> Sandbox {
        let key = environment.key
        try layout.migrateLegacyDirectories(of: session.rawValue)
        // A session whose volume exists has had a sandbox: its files and shell state are there.
        let returning = layout.volume(session.rawValue).exists
        // A workspace built fresh, on this host, starts with the session's files from the store:
        // written where only the host writes, then copied in as the sandbox starts.
        if !returning, let files = settings.sessionFiles {
            let seed = try await files.seed(session)
            if !seed.isEmpty { try await files.store.write(seed, under: layout.staging(session.rawValue)) }
        }
        if !returning, var list = warm[key], !list.isEmpty {
            let entry = list.removeFirst()
            warm[key] = list
            try await adopt(entry, session)
            entry.sandbox.egress?.route.assign(session: session)
            assigned[session] = Assignment(sandbox: entry.sandbox, key: key, checkedOut: .now)
            refill(environment)
            return entry.sandbox
        }
        let layer = try await layers.layer(for: environment)
        try await makeRoom()
        provisioning += 1
        defer { provisioning -= 1 }
        let sandbox = try await startSandbox(session.rawValue, environment, layer: layer, session: session)
        assigned[session] = Assignment(sandbox: sandbox, key: key, checkedOut: .now)
        refill(environment)
        return sandbox
    }

    /// Gives the warm sandbox's volume to the session: its staged files are copied in, then the
    /// volume's directory takes the session's name (the mount follows it).
    private func adopt(_ entry: Warm, _ session: SessionID) async throws {
        let manager = FileManager.default
        let from = layout.volume(entry.name).directory
        let target = layout.volume(session.rawValue).directory
        // Files put there before the first turn (a job's per-item files) go into the sandbox's.
        try layout.moveStagedFiles(of: session.rawValue, into: layout.workspace(entry.name))
        if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
        try manager.moveItem(at: from, to: target)
        await entry.sandbox.adopt(workspace: workspace(session), shellState: shellState(session), volume: layout.volume(session.rawValue))
    }

    private func refill(_ environment: EnvironmentConfig) {
        let key = environment.key
        guard !isShutDown else { return }
        let inFlight = warmTasks.values.filter { $0.key == key }.count
        let missing = settings.warmPerConfiguration - (warm[key]?.count ?? 0) - inFlight
        guard missing > 0 else { return }
        for _ in 0..<missing {
            nextWarmTask += 1
            let id = nextWarmTask
            warmTasks[id] = (
                key,
                Task {
                    await self.provisionWarm(environment)
                    self.warmTasks[id] = nil
                }
            )
        }
    }

    /// Warm provisions under way, by configuration: counted by `refill`, awaited by `shutdown` so
    /// that none outlives the pool.
    private var warmTasks: [Int: (key: String, task: Task<Void, Never>)] = [:]
    private var nextWarmTask = 0
    private var isShutDown = false

    private func provisionWarm(_ environment: EnvironmentConfig) async {
        let key = environment.key
        let layer: URL?
        do {
            layer = try await layers.layer(for: environment)
            try await makeRoom(forWarm: true)
        } catch {
            return
        }
        // The pid names the process that owns it, so that a later pool can tell a dead one's.
        let name = ".warm-\(getpid())-\(Identifier.make(prefix: "w").suffix(12))"
        provisioning += 1
        defer { provisioning -= 1 }
        do {
            let sandbox = try await startSandbox(name, environment, layer: layer)
            let entry = Warm(sandbox: sandbox, name: name, born: .now)
            guard !isShutDown else { return await close(entry) }
            warm[key, default: []].append(entry)
        } catch {
            // The next checkout provisions its own and reports the error to the call.
            await layout.volume(name).remove()
        }
    }

    /// Starts a sandbox on the volume `name`, timed, with a socket on the egress proxy when
    /// `environment` has a network (closed again if the sandbox does not start). For a session
    /// (`name` is its id), the files staged for it are moved in, and its egress is counted as its.
    private func startSandbox(_ name: String, _ environment: EnvironmentConfig, layer: URL?, session: SessionID? = nil) async throws -> Sandbox {
        try await timed { () async throws -> Sandbox in
            let volume = layout.volume(name)
            let egress = try await egress(for: environment)
            if let session { egress?.route.assign(session: session) }
            do {
                // Under the volume's lock: another worker's start-up sweep must not unmount it
                // between making the directories and copying the staged files in.
                let sandbox = try await volume.whileMounted { _ in
                    let (workspace, limits, shellState) = (layout.workspace(name), settings.limits, layout.shellState(name))
                    // Making its cgroup may wait on the kernel's cgroup locks: off the cooperative threads.
                    let sandbox = try await CgroupIO.run {
                        try Sandbox(workspace: workspace, limits: limits, shellState: shellState, packages: layer, volume: volume, egress: egress)
                    }
                    if session != nil { try layout.moveStagedFiles(of: name, into: layout.workspace(name)) }
                    return sandbox
                }
                try await sandbox.start()
                return sandbox
            } catch {
                await egress?.listener.close()
                throw error
            }
        }
    }

    /// A socket on the egress proxy for a sandbox of `environment`, or nil when it has no network.
    private func egress(for environment: EnvironmentConfig) async throws -> SandboxEgress? {
        guard !environment.network.isOffline else { return nil }
        return try await attachEgress(policy: environment.network)
    }

    /// A socket on the pool's egress proxy under `policy`.
    func attachEgress(policy: NetworkPolicy) async throws -> SandboxEgress {
        let station = self.station ?? EgressStation(gate: settings.egressGate, authority: settings.egressAuthority)
        self.station = station
        return try await station.attach(policy: policy)
    }

    /// What the session's sandbox sent and received through the egress proxy, by host and verdict.
    public func egressUsage(_ session: SessionID) -> EgressUsage? {
        assigned[session]?.sandbox.egress?.route.usage
    }

    private func timed<T>(_ body: () async throws -> T) async rethrows -> T {
        let started = ContinuousClock.now
        let value = try await body()
        let elapsed = ContinuousClock.now - started
        histogram.record(milliseconds: Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        DroverMetrics.sandboxProvision.record(duration: elapsed)
        return value
    }

    /// Keeps live sandboxes under the capacity: ends the least recently used idle assigned
    /// sandbox, else (for a session, never for a warm refill) a warm one.
    private func makeRoom(forWarm: Bool = false) async throws {
        while live >= settings.capacity {
            var idle: [(SessionID, ContinuousClock.Instant)] = []
            for (session, assignment) in assigned where !(await assignment.sandbox.isBusy) {
                idle.append((session, max(assignment.checkedOut, await assignment.sandbox.lastUsed)))
            }
            if !forWarm, let key = warm.first(where: { !$0.value.isEmpty })?.key {
                let entry = warm[key]!.removeFirst()
                evicted += 1
                DroverMetrics.sandboxEvictions.increment()
                await close(entry)
                continue
            }
            var made = false
            for (session, _) in idle.sorted(by: { $0.1 < $1.1 }) where await evict(session, idleSince: nil) {
                made = true
                break
            }
            guard made else { throw Full(capacity: settings.capacity) }
        }
    }

    private var live: Int { warm.values.reduce(0) { $0 + $1.count } + assigned.count + provisioning }

    /// Ends sandboxes idle for longer than the time to live, warm ones included.
    public func evictIdle() async {
        let cutoff = ContinuousClock.now - settings.idleTimeToLive
        for (session, assignment) in assigned where assignment.checkedOut < cutoff {
            _ = await evict(session, idleSince: cutoff)
        }
        for (key, list) in warm {
            for entry in list where entry.born < cutoff {
                warm[key]?.removeAll { $0.name == entry.name }
                evicted += 1
                DroverMetrics.sandboxEvictions.increment()
                await close(entry)
            }
        }
    }

    /// Ends the session's sandbox if it is idle (and unused since `idleSince`), and gives up its
    /// assignment. The sandbox decides idleness itself, in one step with ending its processes,
    /// so a call that starts meanwhile is never killed; a checkout while it ends keeps the
    /// assignment, and that session's next call starts a new shell.
    private func evict(_ session: SessionID, idleSince cutoff: ContinuousClock.Instant?) async -> Bool {
        guard let assignment = assigned[session], await assignment.sandbox.endIfIdle(since: cutoff),
            let current = assigned[session], current.sandbox === assignment.sandbox,
            current.checkedOut == assignment.checkedOut
        else { return false }
        assigned[session] = nil
        evicted += 1
        DroverMetrics.sandboxEvictions.increment()
        await layout.volume(session.rawValue).unmount()
        return true
    }

    /// Ends a warm sandbox and removes its unused volume.
    private func close(_ entry: Warm) async {
        await entry.sandbox.close()
        await layout.volume(entry.name).remove()
    }

    /// Ends a session's sandbox and unmounts its volume: mounts are not held for sessions that
    /// may never come back. The image stays, and the next checkout or host-side read mounts it.
    private func close(_ session: SessionID, _ assignment: Assignment) async {
        await assignment.sandbox.close()
        await layout.volume(session.rawValue).unmount()
    }

    private func startSweeper() async {
        guard sweeper == nil else { return }
        LoopVolumeSupport.reportOnce()
        let interval = min(settings.idleTimeToLive / 2, .seconds(30))
        sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self else { return }
                await self.evictIdle()
            }
        }
        await sweepLeftVolumes()
    }

    /// Tidies what workers killed before they could shut down left behind. Their warm volumes
    /// are never adopted: removed (several workers may share the hands root, so only those of
    /// dead pids). Session volumes left mounted are unmounted: a session in use by another live
    /// worker loses nothing by it, since its sandbox keeps its own view of the file system and
    /// every host-side use (a shell starting, a job reading outputs) mounts the volume again
    /// under its lock, reusing the same loop device.
    private func sweepLeftVolumes() async {
        let directory = root.appendingPathComponent("workspaces")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            if name.hasPrefix(".warm-") {
                let owner = name.split(separator: "-").dropFirst().first.flatMap { pid_t($0) }
                if let owner, owner != getpid(), kill(owner, 0) != 0 && errno == ESRCH {
                    await layout.volume(name).remove()
                }
            } else if let session = try? SessionID(name), assigned[session] == nil, pending[session] == nil, layout.volume(name).isMounted {
                await layout.volume(name).unmount()
            }
        }
    }
}

/// The pool's counts as a scrape shows them, read from the pool at the scrape.
public enum SandboxPoolMetrics {
    static let sandboxes = SampledGauges("drover_sandboxes", "state")

    public static func sample(_ pool: SandboxPool) async {
        let stats = await pool.stats
        sandboxes.set([["warm"]: Double(stats.warm), ["in_use"]: Double(stats.inUse), ["provisioning"]: Double(stats.provisioning)])
    }
}
