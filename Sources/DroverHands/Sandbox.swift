import DroverCore
import Foundation

/// Limits one sandbox runs under. Memory, processes and CPU hold for the sandbox as a whole,
/// through its cgroup (see `SandboxCgroup`); the rest per process, through rlimits.
public struct SandboxLimits: Sendable, Equatable {
    public var wallClock: Duration = .seconds(120)
    public var cpuSeconds = 120
    /// The sandbox's memory, its /tmp included. Per process (`RLIMIT_AS`) where no cgroup can be made.
    public var memoryBytes = 2 << 30
    /// Processes and threads in the sandbox at once. Per user where no cgroup can be made.
    public var processes = 256
    /// CPU cores' worth of time the sandbox may use.
    public var cpus = 1.0
    public var fileSizeBytes = 512 << 20
    /// Output kept per call; the rest is dropped with a visible marker.
    public var outputBytes = 64 << 10
    /// The size of the sandbox's /tmp, a tmpfs in host memory (counted in `memoryBytes` too).
    public var tmpBytes = 256 << 20
    /// The most a session's /workspace and /run/shell hold together: the size of its volume (see
    /// `LoopVolume`). Sparse: a volume takes only the disk its files do.
    public var diskBytes = 4 << 30

    public init() {}

    /// The defaults, overridden by `DROVER_SANDBOX_MEMORY` (such as `2GiB`), `DROVER_SANDBOX_PIDS`,
    /// `DROVER_SANDBOX_CPUS` (such as `1.5`), `DROVER_SANDBOX_TMP` (such as `256MiB`) and
    /// `DROVER_SANDBOX_DISK` (such as `4GiB`, or `off` for plain directories with no quota).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(FieldError) -> SandboxLimits {
        var limits = SandboxLimits()
        func value(_ key: String) -> String? {
            guard let raw = environment[key]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        if let raw = value("DROVER_SANDBOX_MEMORY") {
            guard let bytes = ByteCount.parse(raw), (64 << 20) <= bytes, bytes <= (1 << 40) else {
                throw FieldError(
                    field: "DROVER_SANDBOX_MEMORY", message: "'\(raw)' is not a memory size from 64MiB to 1TiB",
                    fix: "set it to a size such as 2GiB or 512MiB, or unset it for the default of 2GiB")
            }
            limits.memoryBytes = bytes
        }
        if let raw = value("DROVER_SANDBOX_TMP") {
            guard let bytes = ByteCount.parse(raw), (1 << 20) <= bytes, bytes <= limits.memoryBytes else {
                throw FieldError(
                    field: "DROVER_SANDBOX_TMP",
                    message: "'\(raw)' is not a size from 1MiB to the sandbox's memory (\(ByteCount.describe(limits.memoryBytes)))",
                    fix: "set it to a size such as 256MiB, or unset it for the default")
            }
            limits.tmpBytes = bytes
        }
        if let raw = value("DROVER_SANDBOX_DISK"), raw.lowercased() != "off" {
            guard let bytes = ByteCount.parse(raw), (16 << 20) <= bytes, bytes <= (16 << 40) else {
                throw FieldError(
                    field: "DROVER_SANDBOX_DISK", message: "'\(raw)' is not a disk size from 16MiB to 16TiB",
                    fix: "set it to a size such as 4GiB, to off for no workspace quota, or unset it for the default of 4GiB")
            }
            limits.diskBytes = bytes
        }
        if let raw = value("DROVER_SANDBOX_PIDS") {
            guard let count = Int(raw), (16...65536).contains(count) else {
                throw FieldError(
                    field: "DROVER_SANDBOX_PIDS", message: "'\(raw)' is not a process count from 16 to 65536",
                    fix: "set it to a whole number such as 256, or unset it for the default")
            }
            limits.processes = count
        }
        if let raw = value("DROVER_SANDBOX_CPUS") {
            guard let cpus = Double(raw), cpus.isFinite, (0.01...1024).contains(cpus) else {
                throw FieldError(
                    field: "DROVER_SANDBOX_CPUS", message: "'\(raw)' is not a number of cores from 0.01 to 1024",
                    fix: "set it to a number such as 1 or 0.5, or unset it for the default of 1")
            }
            limits.cpus = cpus
        }
        return limits
    }
}

/// The result of one command in the sandbox.
public struct SandboxRun: Sendable, Equatable {
    public let exitCode: Int32
    public let output: String
    public let truncated: Bool
    public let timedOut: Bool
}

/// A live bubblewrap sandbox: one long-lived process per session with one persistent `bash`
/// inside, to which calls are sent one at a time. New user, pid, ipc, uts, cgroup and net
/// namespaces; the system read-only; the session's workspace read-write at /workspace; a
/// private /tmp; an environment of PATH, HOME and LANG only (plus PYTHONPATH with a packages
/// layer); rlimits on everything inside; no network: the net namespace has only its own loopback.
///
/// A call that outlives its wall-clock limit, floods its output, or is cancelled (an interrupt,
/// or a takeover by a newer fence epoch) ends the whole sandbox: every process any call started
/// dies with its pid namespace, and the next call starts a new shell on the same workspace.
///
/// bubblewrap itself starts with an empty environment. In the new pid namespace, pid 1 is
/// bubblewrap's init, whose /proc/1/environ is bubblewrap's own: started with the host's
/// environment, it would show the host's secrets to the sandbox.
public actor Sandbox {
    public private(set) var workspace: URL
    public nonisolated let limits: SandboxLimits
    /// Mounted read-write at /run/shell: the call the host hands the shell, and the shell's
    /// directory and exports, saved after each call so that a new shell (after a timeout, an
    /// eviction or on another worker) starts where the last one was. Outside the workspace,
    /// so the agent's files stay its own.
    public private(set) var shellState: URL
    /// A pip `--target` directory, mounted read-only at /opt/drover/python and on PYTHONPATH.
    public nonisolated let packages: URL?
    /// The volume holding the workspace and shell state, kept mounted while a shell starts.
    public private(set) var volume: LoopVolume?
    private let ownsShellState: Bool
    /// Nil where the host gives no cgroups: then rlimits stand in (see `SandboxCgroup`).
    public nonisolated let cgroup: SandboxCgroup?
    /// The way out through the worker's egress proxy; nil for a sandbox with no network.
    public nonisolated let egress: SandboxEgress?
    /// Whether even loopback addresses go to the proxy (no NO_PROXY): for a sandbox that runs
    /// no servers of its own and must reach a host on the worker's loopback through the proxy.
    nonisolated let proxiesLoopback: Bool
    private var process: SandboxProcess?
    /// The session's credential variables, each holding its placeholder (never a secret; see
    /// `EgressSecret`).
    private var credentialVariables: [String: String] = [:]
    /// Whether the next shell should drop the saved directory and exports.
    private var startFresh = false
    private var busy = false
    public private(set) var lastUsed = ContinuousClock.now

    /// `cgroup: false` gives the sandbox rlimits instead of a cgroup, as on a host without
    /// cgroups (a test that kills shells mid-start uses it: see `SandboxDeathTests`).
    public init(
        workspace: URL, limits: SandboxLimits = SandboxLimits(), shellState: URL? = nil, packages: URL? = nil, volume: LoopVolume? = nil,
        egress: SandboxEgress? = nil, proxiesLoopback: Bool = false, cgroup: Bool = true
    ) throws {
        self.proxiesLoopback = proxiesLoopback
        self.volume = volume
        self.egress = egress
        self.workspace = workspace.standardizedFileURL
        self.limits = limits
        self.packages = packages?.standardizedFileURL
        ownsShellState = shellState == nil
        self.shellState =
            (shellState
            ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("drover-shell-\(Identifier.make(prefix: "s").suffix(12))")).standardizedFileURL
        try Self.prepareDirectories(self.workspace, self.shellState)
        self.cgroup = cgroup ? SandboxCgroup.make(limits: limits) : nil
    }

    static func prepareDirectories(_ directories: URL...) throws {
        for directory in directories {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            // Inside the user namespace uid 65534 maps to whoever starts bubblewrap: the caller,
            // or nobody when Drover runs as root (see `spawn`). The writable directories are theirs.
            if getuid() == 0 { chown(directory.path, unprivileged, unprivileged) }
        }
    }

    /// nobody: the host uid sandboxes run as when Drover itself runs as root.
    static let unprivileged: UInt32 = 65534

    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }

    public static let bubblewrap: String? = ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// How to start bubblewrap with `arguments`. As root, bubblewrap starts as nobody, with no
    /// groups and no capabilities: the sandbox's process limit then counts sandboxes only, and
    /// code that escaped bubblewrap would hold nothing on the host.
    ///
    /// With `cgroup`, a shell first writes its own pid into the cgroup and then becomes
    /// bubblewrap: everything the sandbox ever runs starts inside the cgroup, with no moment
    /// outside it for a fork to slip through. Only Drover's own paths reach that shell.
    static func bubblewrapCommand(
        _ arguments: [String], cgroup: SandboxCgroup? = nil
    ) throws(Unavailable) -> (executable: String, arguments: [String]) {
        guard let bwrap = bubblewrap else { throw Unavailable() }
        var command: [String]
        if getuid() == 0 {
            guard let setpriv else { throw Unavailable() }
            command =
                [
                    setpriv, "--reuid=\(unprivileged)", "--regid=\(unprivileged)", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", bwrap,
                ] + arguments
        } else {
            command = [bwrap] + arguments
        }
        if let cgroup {
            command =
                [
                    "/bin/sh", "-c", #"while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@""#,
                    "drover-cgroup-join",
                ] + cgroup.processFiles + ["--"] + command
        }
        return (command[0], Array(command.dropFirst()))
    }

    /// The read-only parts of the host the sandbox sees: those of these that exist, looked up once.
    static let systemPaths = [
        "/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin", "/etc/alternatives",
        "/etc/ld.so.cache", "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/mime.types",
    ]
    .filter { FileManager.default.fileExists(atPath: $0) }

    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String {
            "bubblewrap (bwrap) was not found. Fix: apt-get install -y bubblewrap"
        }
    }

    /// The shell's main loop. Each call arrives on stdin as a line `MODE LENGTH` followed by
    /// LENGTH bytes of command (counted in bytes: `LC_ALL=C` for that read). `shell` runs it in the
    /// shell itself (so `cd`, exports and functions persist, and are saved), `sub` in a subshell
    /// at /workspace (the file tools). The call's status goes to fd 3, so that output never has
    /// to be parsed for a sentinel.
    ///
    /// The command never touches the file system on its way in. It once went through a file the
    /// host wrote in /run/shell, a directory the sandbox can write: a symlink planted there made
    /// the host (root) write and chown any host file. The host now writes nothing there, reads
    /// nothing there and removes nothing there; forgetting the saved state is the shell's own job,
    /// asked for by its first argument.
    static let shellLoop = #"""
        if [ "$1" = fresh ]; then rm -f /run/shell/cwd /run/shell/env; fi
        [ -f /run/shell/env ] && . /run/shell/env >/dev/null 2>&1
        __drover_cwd=/workspace
        [ -f /run/shell/cwd ] && builtin read -r __drover_cwd < /run/shell/cwd
        cd "$__drover_cwd" 2>/dev/null || cd /workspace
        unset __drover_cwd
        set --
        while IFS=' ' builtin read -r __drover_mode __drover_length; do
          __drover_call=
          case $__drover_length in
            ''|*[!0-9]*) ;;
            # read reads a socket a byte at a time: fine for a command, slow for a file the write
            # tool carries. head reads in blocks and stops at exactly LENGTH bytes.
            *) if [ "$__drover_length" -gt 65536 ]; then __drover_call=$(LC_ALL=C /usr/bin/head -c "$__drover_length")
               elif [ "$__drover_length" -gt 0 ]; then LC_ALL=C IFS= builtin read -r -d '' -N "$__drover_length" __drover_call; fi ;;
          esac
          case $__drover_mode in
            shell) eval "$__drover_call" < /dev/null; __drover_status=$?
                   { pwd > /run/shell/cwd; export -p > /run/shell/env; } 2>/dev/null ;;
            sub) (cd /workspace && eval "$__drover_call") < /dev/null; __drover_status=$? ;;
            *) __drover_status=0 ;;
          esac
          builtin printf '%s\n' "$__drover_status" >&3
        done
        """#

    func arguments() -> [String] {
        // --disable-userns: code in the sandbox cannot make user namespaces of its own
        // (`unshare -Ur`), the usual first step of kernel exploits. /tmp is RAM: its size is capped.
        var arguments = [
            "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--uid", "65534", "--gid", "65534",
            "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev", "--size", String(limits.tmpBytes), "--tmpfs", "/tmp",
        ]
        for path in Self.systemPaths {
            arguments += ["--ro-bind", path, path]
        }
        arguments += ["--bind", shellState.path, "/run/shell", "--bind", workspace.path, "/workspace"]
        var path = "/usr/local/bin:/usr/bin:/bin"
        var extra: [String] = []
        // Right after --clearenv and before the sandbox's own, so that a credential named like
        // one of them (PATH, HTTPS_PROXY) cannot displace it: a later --setenv wins.
        var credentials: [String] = []
        for (name, value) in credentialVariables.sorted(by: { $0.key < $1.key }) { credentials += ["--setenv", name, value] }
        if let egress {
            arguments += egress.bindArguments
            for (name, value) in egress.environment(keepsLoopback: !proxiesLoopback) { extra += ["--setenv", name, value] }
        }
        if let packages {
            arguments += ["--ro-bind", packages.path, "/opt/drover/python"]
            path = "/opt/drover/python/bin:" + path
            extra += ["--setenv", "PYTHONPATH", "/opt/drover/python"]
        }
        arguments +=
            [
                // The root bubblewrap builds is a private tmpfs: make it read-only too, so that only
                // /workspace, /run/shell and /tmp take writes.
                "--remount-ro", "/",
                "--chdir", "/workspace",
                "--clearenv",
            ] + credentials + [
                "--setenv", "PATH", path, "--setenv", "HOME", "/workspace", "--setenv", "LANG", "C.UTF-8",
            ] + extra + (egress?.commandPrefix ?? []) + [
                "/usr/bin/prlimit", "--cpu=\(limits.cpuSeconds)", "--fsize=\(limits.fileSizeBytes)", "--core=0",
            ] + fallbackRlimits + [
                "--", "/bin/bash", "--noprofile", "--norc", "-c", Self.shellLoop, "drover-shell", startFresh ? "fresh" : "resume",
            ]
        return arguments
    }

    /// Without a cgroup, the per-process and per-user stand-ins for its limits. With one they are
    /// left off: the cgroup counts the whole sandbox, and an address-space cap breaks runtimes
    /// that reserve far more than they use (Go, the JVM, V8).
    private var fallbackRlimits: [String] {
        cgroup == nil ? ["--as=\(limits.memoryBytes)", "--nproc=\(limits.processes)"] : []
    }

    /// The host pid of the sandbox's bubblewrap process, while it runs.
    public var pid: pid_t? { process.flatMap { $0.isRunning ? $0.pid : nil } }

    public var isBusy: Bool { busy }

    /// Starts the sandbox if it is not running, and waits until its shell answers.
    public func start() async throws {
        try await exclusive { _ = try await self.ensureStarted(within: self.readyPatience(self.limits.wallClock)) }
    }

    /// Points the sandbox at its directories' new host paths after the pool renamed them (the
    /// bind mounts follow the directories, so the running sandbox is unaffected).
    func adopt(workspace: URL, shellState: URL, volume: LoopVolume?) {
        self.volume = volume
        self.workspace = workspace.standardizedFileURL
        self.shellState = shellState.standardizedFileURL
    }

    /// Runs `command` in a subshell at /workspace: state changes stay in the call.
    public func run(_ command: String, wallClock: Duration? = nil) async throws -> SandboxRun {
        try await call(mode: "sub", command, wallClock: wallClock)
    }

    /// Runs `command` in the session's shell: `cd`, variables, exports and functions persist.
    public func runInShell(_ command: String, wallClock: Duration? = nil) async throws -> SandboxRun {
        try await call(mode: "shell", command, wallClock: wallClock)
    }

    /// Sets the session's credential variables. A running shell that lacks them is ended; the
    /// next call starts one with them, resuming the saved directory and exports.
    public func use(credentialVariables variables: [String: String]) async {
        guard variables != credentialVariables else { return }
        credentialVariables = variables
        guard process != nil else { return }
        try? await exclusive {
            await end(process)
            process = nil
        }
    }

    /// Ends the shell and forgets its saved directory and exports: the next call starts afresh.
    public func restartShell() async {
        await end(process)
        process = nil
        forgetShellState()
    }

    /// Ends the sandbox's processes if no call is running and none ended after `cutoff` (any
    /// idle time when nil), in one step: a call arriving meanwhile waits, then starts a new shell.
    /// The pool evicts through this, so that it never kills a call that began after it looked.
    public func endIfIdle(since cutoff: ContinuousClock.Instant? = nil) async -> Bool {
        guard !busy, cutoff.map({ lastUsed < $0 }) ?? true else { return false }
        busy = true
        defer { busy = false }
        await end(process)
        process = nil
        return true
    }

    /// Ends every process in the sandbox. The workspace stays on disk.
    public func close() async {
        await end(process)
        process = nil
        await egress?.listener.close()
        if ownsShellState { try? FileManager.default.removeItem(at: shellState) }
    }

    /// Ends a shell and everything it started: bubblewrap's pid namespace dies with it, and
    /// the cgroup is emptied of whatever a fork bomb spawned meanwhile.
    private func end(_ process: SandboxProcess?) async {
        await process?.kill()
        await cgroup?.killAll()
    }

    /// The next shell starts at /workspace with no saved exports. The files are the shell's to
    /// remove (see `shellLoop`): the host never touches a path in /run/shell.
    private func forgetShellState() {
        startFresh = true
    }

    /// One call at a time: the shell is one. Polling keeps a waiter cancellable.
    private func exclusive<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        while busy { try await Task.sleep(for: .milliseconds(1)) }
        busy = true
        defer {
            busy = false
            lastUsed = .now
        }
        return try await body()
    }

    /// The most one look at a sandbox's output reads before the call's limits are checked again.
    static let readBurst = 1 << 20

    /// How long a new shell may take to say it is ready, at least. Starting is Drover's work, not
    /// the command's, so it does not count against the call's wall clock.
    static let startPatience: Duration = .seconds(30)

    /// Replaces the start patience, so that a test can make a start time out.
    var patienceOverride: Duration?

    func overridePatience(_ patience: Duration) { patienceOverride = patience }

    private func readyPatience(_ wallClock: Duration) -> Duration { patienceOverride ?? max(Self.startPatience, wallClock) }

    private func ensureStarted(within patience: Duration) async throws -> SandboxProcess {
        if let process, process.isRunning { return process }
        await end(process)
        // The volume may have been unmounted on the host since the last shell (an eviction, a
        // sweep by another worker): mounted again, and held until bubblewrap has bound it.
        guard let volume else { return try await startShell(within: patience) }
        return try await volume.whileMounted { _ in try await startShell(within: patience) }
    }

    /// A start that does not answer in time is tried once more: a start has hung in the kernel
    /// on a busy CI machine, once in hundreds of runs, while the next one took milliseconds. A
    /// start that fails outright (bubblewrap refused its arguments) is not tried again.
    private func startShell(within patience: Duration) async throws -> SandboxProcess {
        var stuck: [String] = []
        let fresh = startFresh
        while true {
            let command = try Self.bubblewrapCommand(arguments(), cgroup: cgroup)
            let started = try SandboxProcess(executable: command.executable, arguments: command.arguments)
            process = started
            startFresh = false
            let ready = try await exchange(started, mode: "ready", wallClock: patience)
            if !ready.died, !ready.run.timedOut { return started }
            // A shell that missed its start was killed by the exchange: the call must not go to
            // it, or it reports that kill (137) as if its command had died.
            process = nil
            guard ready.run.timedOut else { throw StartFailed(output: ready.run.output) }
            stuck.append("the shell was not ready within \(patience) (its processes then: \(ready.stuck ?? "none left"))")
            guard stuck.count < 2 else { throw StartFailed(output: stuck.joined(separator: "; then ")) }
            startFresh = fresh
        }
    }

    /// Says so when the workspace's volume is (nearly) full, so that a failed write is explained
    /// by the quota rather than left as a bare "No space left on device".
    private func workspaceFullNote() -> String? {
        guard let volume, volume.isMounted else { return nil }
        var usage = statvfs()
        guard statvfs(volume.mountPoint.path, &usage) == 0 else { return nil }
        let free = Int(usage.f_bavail) * Int(usage.f_frsize)
        guard free < 1 << 20 else { return nil }
        return
            "the workspace is full: /workspace and /run/shell hold at most \(ByteCount.describe(volume.sizeBytes)) (DROVER_SANDBOX_DISK); remove files to make room"
    }

    public struct StartFailed: Error, CustomStringConvertible {
        public let output: String
        public var description: String { "the sandbox did not start: \(output.isEmpty ? "(no output)" : output)" }
    }

    private func call(mode: String, _ command: String, wallClock: Duration?) async throws -> SandboxRun {
        try await exclusive {
            // bash variables cannot hold a NUL byte; refused here rather than cut short there.
            guard !command.utf8.contains(0) else {
                return SandboxRun(
                    exitCode: 2, output: "[drover: the command contains a NUL byte, which a shell cannot run]", truncated: false, timedOut: false)
            }
            let process = try await ensureStarted(within: readyPatience(wallClock ?? limits.wallClock))
            let outcome = try await exchange(process, mode: mode, command: command, wallClock: wallClock ?? limits.wallClock)
            if outcome.run.timedOut { forgetShellState() }
            return outcome.run
        }
    }

    /// Sends one call and collects its output until its status arrives, the shell dies, the
    /// wall clock runs out or the output floods.
    private func exchange(
        _ process: SandboxProcess, mode: String, command: String = "", wallClock: Duration
    ) async throws -> (run: SandboxRun, died: Bool, stuck: String?) {
        var output: [UInt8] = []
        var total = 0
        var statusBytes: [UInt8] = []
        // What background processes printed between calls is not this call's. A bounded drain:
        // processes that keep printing must not hold this thread (see `collect`).
        var drained = 0
        while drained < Self.readBurst, case .data(let n) = process.readOutput(into: &output) {
            drained += n
            output.removeAll(keepingCapacity: true)
        }
        let countersBefore = cgroup?.counters
        let started = ContinuousClock.now
        let deadline = started + wallClock
        var timedOut = false, overflowed = false, died = false
        // At most `readBurst` bytes per look. Read until the pipe was empty, a flood from many
        // writers that outpace one reader kept this loop (and the thread under it) busy for as
        // long as the flood lasted: the wall clock and the flood check below it never ran, and a
        // fork bomb's "fork: retry" messages held a worker thread for two minutes.
        func collect() {
            var read = 0
            while read < Self.readBurst, case .data(let n) = process.readOutput(into: &output) {
                read += n
                total += n
                if output.count > limits.outputBytes + 1 { output.removeLast(output.count - limits.outputBytes - 1) }
            }
        }
        if !process.send("\(mode) \(command.utf8.count)\n" + command) { died = true }
        while !died {
            collect()
            if case .closed = process.readStatuses(into: &statusBytes) { died = true }
            if statusBytes.contains(UInt8(ascii: "\n")) { break }
            if !process.isRunning {
                died = true
                break
            }
            if ContinuousClock.now >= deadline {
                timedOut = true
                break
            }
            // An output flood is stopped as soon as it passes a generous multiple of the cap.
            if total > limits.outputBytes * 16 {
                overflowed = true
                break
            }
            do {
                // Most calls are short: poll finely at first, then back off.
                let elapsed = ContinuousClock.now - started
                try await Task.sleep(
                    for: elapsed < .milliseconds(20) ? .microseconds(250) : elapsed < .milliseconds(200) ? .milliseconds(1) : .milliseconds(5))
            } catch {
                // Cancelled (an interrupt or a takeover): end everything the call started.
                await end(process)
                self.process = nil
                throw error
            }
        }
        collect()
        if died {
            // The shell closed its end: give bubblewrap time to exit with the shell's code. It
            // normally takes milliseconds; on a loaded machine it took over half a second, and
            // the call then reported the kill (137) instead of the shell's own exit code.
            let grace = ContinuousClock.now + .seconds(5)
            while process.isRunning && ContinuousClock.now < grace { try? await Task.sleep(for: .milliseconds(5)) }
        }
        // Where the sandbox's processes wait in the kernel, kept before they are killed: a start
        // that timed out is otherwise a mystery.
        let stuck = timedOut && mode == "ready" ? ProcessStates.describeTree(process.pid) : nil
        if timedOut || overflowed || died {
            await end(process)
            if self.process === process { self.process = nil }
            collect()
        }
        let truncated = output.count > limits.outputBytes || overflowed
        var text = String(decoding: output.prefix(limits.outputBytes), as: UTF8.self)
        if truncated { text += "\n[drover: output truncated at \(limits.outputBytes) bytes]" }
        if let cgroup, let countersBefore {
            for note in cgroup.explain(before: countersBefore, after: cgroup.counters) { text += "\n[drover: \(note)]" }
        }
        if let full = workspaceFullNote() { text += "\n[drover: \(full)]" }
        if timedOut { text += "\n[drover: stopped after the wall-clock limit of \(wallClock); the shell starts afresh on the next call]" }
        var exitCode: Int32
        if timedOut {
            exitCode = 124
        } else if died {
            exitCode = process.exitCode ?? -1
            if exitCode == 0 { exitCode = -1 }
            text += "\n[drover: the shell ended during the call (exit code \(exitCode)); the next call starts a new one on the same workspace]"
        } else if overflowed {
            exitCode = 141
        } else {
            exitCode = Int32(String(decoding: statusBytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)) ?? -1
        }
        return (SandboxRun(exitCode: exitCode, output: text, truncated: truncated, timedOut: timedOut), died, stuck)
    }
}
