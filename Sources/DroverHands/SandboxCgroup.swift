import DroverCore
import Foundation
import Logging

/// The kernel's limits on one sandbox as a whole: its processes, its memory (including the pages
/// of its RAM-backed /tmp) and its CPU time, counted over every process it starts, whatever the
/// user inside.
///
/// rlimits cannot do this. `RLIMIT_NPROC` counts per user, and every sandbox runs as nobody: one
/// sandbox's fork bomb used up the processes of all the others. `RLIMIT_AS` counts per process, so
/// three sandboxes took 5.6 GB between them, and a fork bomb held the host's load at 12 until the
/// wall clock ran out. A cgroup counts the whole tree and is killed as one.
///
/// cgroup v2 where it is mounted with the controllers, v1 otherwise. Each sandbox gets a cgroup
/// below the one Drover runs in (so a container's own limit still holds over all of them), named
/// `drover-PID/ID`. Where none can be made, `CgroupSupport.current` says why, Drover logs it once,
/// and sandboxes fall back to rlimits.
public final class SandboxCgroup: Sendable {
    public let name: String
    /// One directory per v1 controller, or the single v2 directory.
    let directories: [URL]
    let version: CgroupSupport.Version
    public let limits: SandboxLimits

    /// Makes the cgroup and writes its limits. Nil where cgroups are unavailable (see
    /// `CgroupSupport.current`).
    static func make(limits: SandboxLimits) -> SandboxCgroup? {
        guard case .available(let version, let parents) = CgroupSupport.current else {
            CgroupSupport.reportFallbackOnce()
            return nil
        }
        let name = Identifier.make(prefix: "sbx").suffix(16).lowercased()
        let directories = parents.map { $0.appendingPathComponent(String(name), isDirectory: true) }
        do {
            // The parents may have been swept by another Drover process's start-up while this
            // one was paused (a pid reused): made again if so.
            for parent in parents { try makeDirectory(parent) }
            for directory in directories { try makeDirectory(directory) }
            let cgroup = SandboxCgroup(name: String(name), directories: directories, version: version, limits: limits)
            try cgroup.writeLimits()
            return cgroup
        } catch {
            for directory in directories { rmdir(directory.path) }
            CgroupSupport.reportFailureOnce(error)
            return nil
        }
    }

    private init(name: String, directories: [URL], version: CgroupSupport.Version, limits: SandboxLimits) {
        self.name = name
        self.directories = directories
        self.version = version
        self.limits = limits
    }

    deinit {
        // Not on the caller's thread, which may be one of Swift's few cooperative threads.
        let (directories, files, version) = (directories, processFiles, version)
        CgroupIO.queue.async { Self.remove(directories: directories, processFiles: files, version: version) }
    }

    /// The `cgroup.procs` files a process writes its pid to, to join.
    var processFiles: [String] { directories.map { $0.appendingPathComponent("cgroup.procs").path } }

    private func writeLimits() throws {
        let period = 100_000
        let quota = max(1_000, Int(limits.cpus * Double(period)))
        switch version {
        case .v2:
            let directory = directories[0]
            try write("\(limits.processes)", to: directory, "pids.max")
            try write("\(limits.memoryBytes)", to: directory, "memory.max")
            // No swap: a sandbox over its memory is killed, not paged out at the host's expense.
            try? write("0", to: directory, "memory.swap.max")
            try write("\(quota) \(period)", to: directory, "cpu.max")
        case .v1:
            // One directory per controller, in the order `CgroupSupport.v1Controllers` names them.
            let (pids, memory, cpu) = (directories[0], directories[1], directories[2])
            try write("\(limits.processes)", to: pids, "pids.max")
            try write("\(limits.memoryBytes)", to: memory, "memory.limit_in_bytes")
            // memsw exists only with swap accounting; where it does, swap counts against the limit.
            try? write("\(limits.memoryBytes)", to: memory, "memory.memsw.limit_in_bytes")
            try write("\(period)", to: cpu, "cpu.cfs_period_us")
            try write("\(quota)", to: cpu, "cpu.cfs_quota_us")
        }
    }

    /// How often the kernel has acted on a limit so far: compared before and after a call.
    public struct Counters: Sendable, Equatable {
        /// Processes killed for memory.
        public var memoryKills = 0
        /// fork() calls refused at the process limit.
        public var refusedForks = 0
    }

    public var counters: Counters {
        switch version {
        case .v2:
            Counters(
                memoryKills: Self.field("oom_kill", in: directories[0].appendingPathComponent("memory.events")),
                refusedForks: Self.field("max", in: directories[0].appendingPathComponent("pids.events")))
        case .v1:
            Counters(
                memoryKills: Self.field("oom_kill", in: directories[1].appendingPathComponent("memory.oom_control")),
                refusedForks: Self.field("max", in: directories[0].appendingPathComponent("pids.events")))
        }
    }

    /// Processes and threads in the sandbox now (`pids.current`, the same in v1 and v2).
    public func processCount() -> Int {
        let text = (try? String(contentsOf: directories[0].appendingPathComponent("pids.current"), encoding: .utf8)) ?? ""
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// What the kernel did to a call, in the words its result carries.
    public func explain(before: Counters, after: Counters) -> [String] {
        var notes: [String] = []
        if after.memoryKills > before.memoryKills {
            notes.append("killed: memory limit \(ByteCount.describe(limits.memoryBytes)) (the sandbox's processes and its /tmp together)")
        }
        if after.refusedForks > before.refusedForks {
            notes.append("process limit \(limits.processes) reached: \(after.refusedForks - before.refusedForks) new processes were refused")
        }
        return notes
    }

    /// SIGKILL to every process in the cgroup, until it is empty. The sandbox's pid namespace
    /// already ends with its init; this also catches what a fork bomb spawns meanwhile. A killed
    /// process stays listed while the kernel frees its memory, so this waits (up to `patience`).
    public func killAll(patience: Duration = .seconds(5)) async {
        let deadline = ContinuousClock.now + patience
        let (directories, files, version) = (directories, processFiles, version)
        while await CgroupIO.run({ Self.signalMembers(directories: directories, processFiles: files, version: version) }),
            ContinuousClock.now < deadline
        {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// SIGKILL to every member; false when there were none.
    private static func signalMembers(directories: [URL], processFiles: [String], version: CgroupSupport.Version) -> Bool {
        if version == .v2, (try? write("1", to: directories[0].appendingPathComponent("cgroup.kill").path)) != nil {
            return Self.field("populated", in: directories[0].appendingPathComponent("cgroup.events")) != 0
        }
        var any = false
        for file in processFiles {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") {
                if let pid = pid_t(line) {
                    any = true
                    Glibc.kill(pid, SIGKILL)
                }
            }
        }
        return any
    }

    /// Removes the cgroup: the kernel refuses while a member is still being torn down, so a
    /// few tries, then the directory is left for the sweep at the next start.
    public func remove() {
        Self.remove(directories: directories, processFiles: processFiles, version: version)
    }

    private static func remove(directories: [URL], processFiles: [String], version: CgroupSupport.Version) {
        _ = signalMembers(directories: directories, processFiles: processFiles, version: version)
        for directory in directories {
            for _ in 0..<100 {
                if rmdir(directory.path) == 0 || errno == ENOENT { break }
                usleep(1_000)
            }
        }
    }

    static func makeDirectory(_ directory: URL) throws {
        if mkdir(directory.path, 0o755) != 0 && errno != EEXIST {
            throw CgroupSupport.Failure(path: directory.path, code: errno)
        }
    }

    private func write(_ value: String, to directory: URL, _ file: String) throws {
        try Self.write(value, to: directory.appendingPathComponent(file).path)
    }

    static func write(_ value: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupSupport.Failure(path: path, code: errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw CgroupSupport.Failure(path: path, code: errno) }
    }

    static func field(_ name: String, in file: URL) -> Int {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == name, let value = Int(parts[1]) { return value }
        }
        return 0
    }
}

/// Whether this host lets Drover make cgroups for its sandboxes, found out once per process.
public enum CgroupSupport: Sendable, Equatable {
    public enum Version: Sendable, Equatable { case v1, v2 }
    /// `parents`: the directories each sandbox's cgroup is made in (one per v1 controller).
    case available(Version, parents: [URL])
    case unavailable(reason: String)

    public struct Failure: Error, CustomStringConvertible {
        let path: String
        let code: Int32
        public var description: String { "\(path): \(String(cString: strerror(code)))" }
    }

    public static let current: CgroupSupport = detect()

    /// `DROVER_SANDBOX_CGROUPS=off` turns them off (for hosts where writing cgroups is not wanted).
    static func detect(
        root: URL = URL(fileURLWithPath: "/sys/fs/cgroup"), membership: String? = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> CgroupSupport {
        if environment["DROVER_SANDBOX_CGROUPS"] == "off" {
            return .unavailable(reason: "DROVER_SANDBOX_CGROUPS=off")
        }
        guard let membership else { return .unavailable(reason: "/proc/self/cgroup cannot be read") }
        let own = Dictionary(
            membership.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard parts.count == 3 else { return nil }
                return (String(parts[1]), String(parts[2]))
            }, uniquingKeysWith: { first, _ in first })
        let group = "drover-\(getpid())"
        // v2: the unified hierarchy at the root with the three controllers available.
        if let path = own[""], own.count == 1,
            let controllers = try? String(contentsOf: root.appendingPathComponent("cgroup.controllers"), encoding: .utf8),
            ["pids", "memory", "cpu"].allSatisfy({
                controllers.split(separator: " ").map(String.init).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.contains($0)
            })
        {
            let base = root.appendingPathComponent(String(path.drop(while: { $0 == "/" })), isDirectory: true)
            let parent = base.appendingPathComponent(group, isDirectory: true)
            sweepStale(in: [base])
            do {
                try SandboxCgroup.makeDirectory(parent)
                // Children get the controllers. This fails where Drover's own cgroup holds
                // processes and is not the root (the kernel's no-internal-processes rule).
                try SandboxCgroup.write("+pids +memory +cpu", to: base.appendingPathComponent("cgroup.subtree_control").path)
                try SandboxCgroup.write("+pids +memory +cpu", to: parent.appendingPathComponent("cgroup.subtree_control").path)
                return .available(.v2, parents: [parent])
            } catch {
                rmdir(parent.path)
                return .unavailable(reason: "cgroup v2: \(error)")
            }
        }
        // v1: one hierarchy per controller, each with its own path for this process.
        var parents: [URL] = []
        for controller in v1Controllers {
            guard let key = own.keys.first(where: { $0.split(separator: ",").contains(Substring(controller)) }), let path = own[key] else {
                parents.forEach { rmdir($0.path) }
                return .unavailable(reason: "no \(controller) cgroup is mounted")
            }
            // Mounted at /sys/fs/cgroup/pids, or at a joint name such as cpu,cpuacct.
            guard
                let mount = [controller, key].map({ root.appendingPathComponent($0) }).first(where: {
                    FileManager.default.fileExists(atPath: $0.path)
                })
            else {
                parents.forEach { rmdir($0.path) }
                return .unavailable(reason: "the \(controller) cgroup is not under \(root.path)")
            }
            let container = mount.appendingPathComponent(String(path.drop(while: { $0 == "/" })), isDirectory: true)
            sweepStale(in: [container])
            let parent = container.appendingPathComponent(group, isDirectory: true)
            do {
                try SandboxCgroup.makeDirectory(parent)
            } catch {
                parents.forEach { rmdir($0.path) }
                return .unavailable(reason: "cgroup v1: \(error)")
            }
            parents.append(parent)
        }
        return .available(.v1, parents: parents)
    }

    static let v1Controllers = ["pids", "memory", "cpu"]

    private static let logger = Logger(label: "drover.sandbox")
    private static let reported = Locked(false)

    static func reportFallbackOnce() {
        guard case .unavailable(let reason) = current else { return }
        warnOnce("sandboxes run without cgroup limits (\(reason))")
    }

    static func reportFailureOnce(_ error: Error) {
        warnOnce("a sandbox cgroup could not be made (\(error))")
    }

    /// One warning per process, whichever way cgroups failed first.
    private static func warnOnce(_ problem: String) {
        guard
            reported.withLock({ done in
                defer { done = true }
                return !done
            })
        else { return }
        logger.warning("\(problem); sandboxes fall back to rlimits: memory per process, processes per user")
    }

    /// Removes the cgroups of Drover processes that are gone (a crash, a kill -9), killing what
    /// still runs in them: a sandbox must not outlive the worker that started it.
    static func sweepStale(in containers: [URL]) {
        let manager = FileManager.default
        for container in containers {
            guard let names = try? manager.contentsOfDirectory(atPath: container.path) else { continue }
            for name in names where name.hasPrefix("drover-") {
                guard let pid = pid_t(name.dropFirst("drover-".count)), pid != getpid(),
                    Glibc.kill(pid, 0) != 0 && errno == ESRCH
                else { continue }
                let parent = container.appendingPathComponent(name, isDirectory: true)
                for child in (try? manager.contentsOfDirectory(atPath: parent.path)) ?? [] where child.hasPrefix("sbx") {
                    let directory = parent.appendingPathComponent(child, isDirectory: true)
                    for _ in 0..<100 {
                        let procs = (try? String(contentsOf: directory.appendingPathComponent("cgroup.procs"), encoding: .utf8)) ?? ""
                        let pids = procs.split(separator: "\n").compactMap { pid_t($0) }
                        if pids.isEmpty { break }
                        pids.forEach { Glibc.kill($0, SIGKILL) }
                        usleep(1_000)
                    }
                    rmdir(directory.path)
                }
                rmdir(parent.path)
            }
        }
    }
}

/// Byte counts as people write them: `2 GiB`, `256 MiB`.
public enum ByteCount {
    public static func describe(_ bytes: Int) -> String {
        let units = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, unit) in units where bytes >= size {
            let value = Double(bytes) / Double(size)
            return value == value.rounded() ? "\(Int(value)) \(unit)" : String(format: "%.1f %@", value, unit)
        }
        return "\(bytes) bytes"
    }

    /// Parses `2GiB`, `512 MiB`, `1g`, `1048576`. Nil for anything else.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard let number = Double(digits), number >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        let kib = 1024.0, mib = kib * 1024, gib = mib * 1024, tib = gib * 1024
        let multipliers: [String: Double] = [
            "": 1, "b": 1, "k": kib, "kb": kib, "kib": kib, "m": mib, "mb": mib, "mib": mib,
            "g": gib, "gb": gib, "gib": gib, "t": tib, "tb": tib, "tib": tib,
        ]
        guard let multiplier = multipliers[unit] else { return nil }
        let value = number * multiplier
        guard value < Double(Int64.max / 2) else { return nil }
        return Int(value)
    }
}

/// Where Drover's own cgroup filesystem calls run: a thread of their own, never one of Swift's
/// cooperative threads. On cgroup v1 a process joining a cgroup can wait for an RCU grace
/// period while holding the kernel's cgroup locks, and every mkdir, rmdir and write in the
/// cgroup filesystem waits behind it. Seen in CI: a sandbox start stalled that way, and with
/// the cooperative threads (two on a 2-core machine) blocked in such calls, unrelated async
/// work in the process (an egress decision) waited out a 30 s timeout. One serial queue: the
/// kernel serialises these calls anyway.
enum CgroupIO {
    static let queue = DispatchQueue(label: "drover.cgroup-io")

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in queue.async { continuation.resume(returning: body()) } }
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in queue.async { continuation.resume(with: Result { try body() }) } }
    }
}
