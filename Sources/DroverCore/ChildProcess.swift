import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, with a clean signal mask and default handlers.
///
/// Foundation's `Process` spawns from whichever thread calls it, and a child inherits that
/// thread's signal mask: from a libdispatch worker, SIGTERM and SIGINT arrive blocked and the
/// child ignores them. Servers and sandboxes must stop when told to, so they start here.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let executable: String
    private let lock = NSLock()
    private var status: Int32?

    public struct SpawnError: Error, CustomStringConvertible {
        public let executable: String
        public let code: Int32
        public var description: String { "cannot start \(executable): \(String(cString: strerror(code)))" }
    }

    /// Starts `executable` with `arguments` (not including argv[0]). Standard input reads
    /// /dev/null; standard output goes to `outputPath` (appended) or /dev/null, and standard
    /// error to `errorPath`, or with standard output.
    public init(
        executable: String,
        arguments: [String],
        environment: [String: String]? = nil,
        outputPath: String? = nil,
        errorPath: String? = nil
    ) throws(SpawnError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let output = outputPath ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // Its own process group, so that a terminal's Ctrl-C reaches only Drover, which then stops
        // the child in order.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") }
        defer { env.forEach { free($0) } }

        var child: pid_t = 0
        let result = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (env + [nil]).withUnsafeBufferPointer { envBuffer in
                posix_spawn(&child, executable, &actions, &attributes,
                            UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                            UnsafeMutablePointer(mutating: envBuffer.baseAddress!))
            }
        }
        guard result == 0 else { throw SpawnError(executable: executable, code: result) }
        self.pid = child
        self.executable = executable
    }

    /// The wait status once the child has exited, without blocking.
    public var exitStatus: Int32? {
        lock.withLock {
            if status == nil {
                var raw: Int32 = 0
                let reaped = waitpid(pid, &raw, WNOHANG)
                if reaped == pid {
                    status = raw
                } else if reaped < 0 && errno == ECHILD {
                    status = -1
                }
            }
            return status
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// The exit code once the child has exited, as a shell reports it: its own code, or 128 plus
    /// the signal that ended it.
    public var exitCode: Int32? {
        guard let raw = exitStatus else { return nil }
        if raw == -1 { return -1 }
        return (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    public func signal(_ signal: Int32) {
        if isRunning { Glibc.kill(pid, signal) }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL. Returns once the child is reaped.
    public func terminate(grace: Duration = .seconds(10)) async {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        if isRunning {
            signal(SIGKILL)
            while isRunning { try? await Task.sleep(for: .milliseconds(2)) }
        }
    }

    /// SIGKILL, then waits until reaped.
    public func kill() async {
        signal(SIGKILL)
        while isRunning { try? await Task.sleep(for: .milliseconds(2)) }
    }
}
