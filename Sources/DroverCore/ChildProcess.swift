import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started through `Spawn`: a clean signal mask and default handlers, and only
/// the descriptors it is given.
///
/// Foundation's `Process` spawns from whichever thread calls it, and a child inherits that
/// thread's signal mask: from a libdispatch worker, SIGTERM and SIGINT arrive blocked and the
/// child ignores them. Servers and sandboxes must stop when told to, so they start here.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let executable: String
    private let lock = NSLock()
    private var status: Int32?

    public typealias SpawnError = Spawn.Failure

    /// Starts `executable` with `arguments` (not including argv[0]). Standard input reads
    /// /dev/null; standard output goes to `outputPath` (appended) or /dev/null, and standard
    /// error to `errorPath`, or with standard output. No other descriptor reaches the child.
    public init(
        executable: String,
        arguments: [String],
        environment: [String: String]? = nil,
        outputPath: String? = nil,
        errorPath: String? = nil
    ) throws(SpawnError) {
        let output = Spawn.Source.file(outputPath ?? "/dev/null", flags: O_WRONLY | O_CREAT | O_APPEND)
        let spawn = Spawn(
            executable: executable, arguments: arguments,
            environment: environment ?? ProcessInfo.processInfo.environment,
            descriptors: [
                0: .file("/dev/null", flags: O_RDONLY), 1: output,
                2: errorPath.map { .file($0, flags: O_WRONLY | O_CREAT | O_APPEND) } ?? output,
            ])
        self.pid = try spawn.start()
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

    /// Waits until the child has exited and returns its exit code. Polls without holding a
    /// thread, and waits out a cancellation too, without spinning: a caller that must not leave
    /// a child half done (a mount, a kill) gets its result either way.
    @discardableResult
    public func exitCodeWhenDone(polling interval: Duration = .milliseconds(2)) async -> Int32 {
        // A task of its own is not cancelled with the caller, so its sleeps keep sleeping.
        await Task {
            while isRunning { try? await Task.sleep(for: interval) }
        }.value
        return exitCode ?? -1
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
        await exitCodeWhenDone()
    }
}
