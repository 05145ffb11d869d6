import DroverCore
import Foundation

/// Limits one sandboxed command runs under.
public struct SandboxLimits: Sendable, Equatable {
    public var wallClock: Duration = .seconds(120)
    public var cpuSeconds = 120
    public var addressSpaceBytes = 2 << 30
    public var processes = 256
    public var fileSizeBytes = 512 << 20
    /// Output kept per call; the rest is dropped with a visible marker.
    public var outputBytes = 64 << 10

    public init() {}
}

/// The result of one command in the sandbox.
public struct SandboxRun: Sendable, Equatable {
    public let exitCode: Int32
    public let output: String
    public let truncated: Bool
    public let timedOut: Bool
}

/// Runs commands in a bubblewrap sandbox: new user, pid, ipc, uts, cgroup and net namespaces, the
/// system read-only, the session's workspace read-write at /workspace, a private /tmp, an
/// environment of PATH, HOME and LANG only, rlimits, and a wall-clock limit that ends every
/// process the command started. No network: the net namespace has only its own loopback.
///
/// bubblewrap itself starts with an empty environment. In the new pid namespace, pid 1 is
/// bubblewrap's init, whose /proc/1/environ is bubblewrap's own: started with the host's
/// environment, it would show the host's secrets to the sandbox.
public struct Sandbox: Sendable {
    public let workspace: URL
    public let limits: SandboxLimits
    /// Mounted read-write at /run/shell: where the bash tool keeps its directory and exports
    /// between calls. Outside the workspace, so the agent's files stay its own.
    public let shellState: URL?

    public init(workspace: URL, limits: SandboxLimits = SandboxLimits(), shellState: URL? = nil) throws {
        self.workspace = workspace.standardizedFileURL
        self.limits = limits
        self.shellState = shellState?.standardizedFileURL
        try FileManager.default.createDirectory(at: self.workspace, withIntermediateDirectories: true)
        if let shellState { try FileManager.default.createDirectory(at: shellState, withIntermediateDirectories: true) }
        // Inside the user namespace uid 65534 maps to whoever starts bubblewrap: the caller, or
        // nobody when Drover runs as root (see `run`). The writable directories are theirs.
        if getuid() == 0 {
            chown(self.workspace.path, Self.unprivileged, Self.unprivileged)
            if let shellState { chown(shellState.path, Self.unprivileged, Self.unprivileged) }
        }
    }

    /// nobody: the host uid sandboxes run as when Drover itself runs as root.
    static let unprivileged: UInt32 = 65534

    static var setpriv: String? {
        ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public static var bubblewrap: String? {
        ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The read-only parts of the host the sandbox sees: those of these that exist, looked up once.
    static let systemPaths = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin", "/etc/alternatives",
                              "/etc/ld.so.cache", "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/mime.types"]
        .filter { FileManager.default.fileExists(atPath: $0) }

    func arguments(command: String) -> [String] {
        var arguments = ["--unshare-all", "--die-with-parent", "--new-session", "--uid", "65534", "--gid", "65534",
                         "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in Self.systemPaths {
            arguments += ["--ro-bind", path, path]
        }
        if let shellState { arguments += ["--bind", shellState.path, "/run/shell"] }
        arguments += [
            "--bind", workspace.path, "/workspace",
            // The root bubblewrap builds is a private tmpfs: make it read-only too, so that only
            // /workspace and /tmp take writes.
            "--remount-ro", "/",
            "--chdir", "/workspace",
            "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/workspace",
            "--setenv", "LANG", "C.UTF-8",
            "/usr/bin/prlimit", "--cpu=\(limits.cpuSeconds)", "--as=\(limits.addressSpaceBytes)",
            "--nproc=\(limits.processes)", "--fsize=\(limits.fileSizeBytes)", "--core=0", "--",
            "/bin/bash", "--noprofile", "--norc", "-c", command,
        ]
        return arguments
    }

    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String {
            "bubblewrap (bwrap) was not found. Fix: apt-get install -y bubblewrap"
        }
    }

    /// Runs `command` with bash in the sandbox and returns its combined output.
    public func run(_ command: String, wallClock: Duration? = nil) async throws -> SandboxRun {
        guard let bwrap = Self.bubblewrap else { throw Unavailable() }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("drover-sandbox-\(Identifier.make(prefix: "o").suffix(12)).log").path
        defer { unlink(log) }
        // As root, bubblewrap starts as nobody, with no groups and no capabilities: the sandbox's
        // process limit then counts sandboxes only, and code that escaped bubblewrap would hold
        // nothing on the host.
        var executable = bwrap
        var arguments = arguments(command: command)
        if getuid() == 0 {
            guard let setpriv = Self.setpriv else { throw Unavailable() }
            executable = setpriv
            arguments = ["--reuid=\(Self.unprivileged)", "--regid=\(Self.unprivileged)", "--clear-groups",
                         "--inh-caps=-all", "--bounding-set=-all", bwrap] + arguments
        }
        // The output file must be writable by nobody too: create it first, then hand it over.
        _ = FileManager.default.createFile(atPath: log, contents: nil, attributes: [.posixPermissions: 0o600])
        if getuid() == 0 { chown(log, Self.unprivileged, Self.unprivileged) }
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: [:], outputPath: log)
        let limit = wallClock ?? limits.wallClock
        let deadline = ContinuousClock.now + limit
        var timedOut = false
        var overflowed = false
        while child.isRunning {
            if ContinuousClock.now >= deadline {
                timedOut = true
                break
            }
            // An output flood is stopped as soon as it passes a generous multiple of the cap.
            if let size = try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int, size > limits.outputBytes * 16 {
                overflowed = true
                break
            }
            do {
                // Most calls are short: poll finely at first, then back off.
                let elapsed = ContinuousClock.now - (deadline - limit)
                try await Task.sleep(for: elapsed < .milliseconds(50) ? .milliseconds(1) : .milliseconds(5))
            } catch {
                // Cancelled (an interrupt): end everything the command started.
                await child.kill()
                throw error
            }
        }
        if child.isRunning {
            // bubblewrap's pid 1 dying ends every process in the sandbox's pid namespace.
            await child.kill()
        }
        let exitCode = child.exitCode ?? -1
        let (output, truncated) = Self.read(log, limit: limits.outputBytes)
        var text = output
        if truncated || overflowed {
            text += "\n[drover: output truncated at \(limits.outputBytes) bytes]"
        }
        if timedOut {
            text += "\n[drover: stopped after the wall-clock limit of \(limit)]"
        }
        return SandboxRun(exitCode: timedOut ? 124 : exitCode, output: text, truncated: truncated || overflowed, timedOut: timedOut)
    }

    static func read(_ path: String, limit: Int) -> (String, Bool) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return ("", false) }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
        let truncated = data.count > limit
        return (String(decoding: data.prefix(limit), as: UTF8.self), truncated)
    }
}
