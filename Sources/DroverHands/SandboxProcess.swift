import DroverCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One long-lived bubblewrap process and the three channels to the shell inside it: commands in
/// (writing to a dead shell fails with EPIPE rather than a SIGPIPE: MSG_NOSIGNAL), combined
/// output out, and call statuses out on fd 3. The host ends are non-blocking and close-on-exec,
/// so no other child Drover spawns holds them open.
///
/// Killing the process shuts its channels down; they are closed only when this object goes.
/// Closed at the kill, their numbers were reused by the next sandbox's channels while a call
/// still held this object, and its last read took another sandbox's output (or blocked on its
/// command channel), and a write could have reached another session's shell.
final class SandboxProcess: @unchecked Sendable {
    let pid: pid_t
    private let commands: Int32
    private let output: Int32
    private let statuses: Int32
    private let lock = NSLock()
    private var status: Int32?
    private var shutDown = false

    struct SpawnError: Error, CustomStringConvertible {
        let step: String
        let code: Int32
        var description: String { "cannot start the sandbox (\(step)): \(String(cString: strerror(code)))" }
    }

    init(executable: String, arguments: [String]) throws(SpawnError) {
        // Socket pairs rather than pipes: `send` with MSG_NOSIGNAL turns a write to a dead shell
        // into EPIPE rather than a SIGPIPE. Made close-on-exec atomically, so a child spawned
        // meanwhile on another thread holds none.
        func pair() throws(SpawnError) -> [Int32] {
            var fds: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                throw SpawnError(step: "socketpair", code: errno)
            }
            return fds
        }
        let commandPair = try pair()
        let outputPipe = try pair()
        let statusPipe = try pair()
        let childEnds = [commandPair[1], outputPipe[1], statusPipe[1]]
        defer { childEnds.forEach { Glibc.close($0) } }

        // fds 0 to 3 reach the shell, nothing else does. bubblewrap starts with an empty
        // environment (see Sandbox).
        let spawn = Spawn(
            executable: executable, arguments: arguments, environment: [:],
            descriptors: [
                0: .descriptor(commandPair[1]), 1: .descriptor(outputPipe[1]),
                2: .descriptor(outputPipe[1]), 3: .descriptor(statusPipe[1]),
            ])
        let child: pid_t
        do {
            child = try spawn.start()
        } catch {
            [commandPair[0], outputPipe[0], statusPipe[0]].forEach { Glibc.close($0) }
            throw SpawnError(step: "posix_spawn \(executable)", code: error.code)
        }
        pid = child
        commands = commandPair[0]
        output = outputPipe[0]
        statuses = statusPipe[0]
        for fd in [output, statuses] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        if isRunning { Glibc.kill(pid, SIGKILL) }
        // Nothing can use these numbers any more: only now may they go back to the system.
        [commands, output, statuses].forEach { _ = Glibc.close($0) }
    }

    var isRunning: Bool {
        lock.withLock {
            if status == nil {
                var raw: Int32 = 0
                let reaped = waitpid(pid, &raw, WNOHANG)
                if reaped == pid { status = raw } else if reaped < 0 && errno == ECHILD { status = -1 }
            }
            return status == nil
        }
    }

    /// The exit code once bubblewrap has exited, as a shell reports it.
    var exitCode: Int32? {
        guard !isRunning, let raw = lock.withLock({ status }) else { return nil }
        if raw == -1 { return -1 }
        return (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// Sends bytes to the shell's stdin, exactly as given. False if the shell is gone.
    func send(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.send(commands, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    enum Read: Equatable { case data(Int), empty, closed }

    /// The host ends, for the test that they are never another sandbox's.
    var descriptors: [Int32] { [commands, output, statuses] }

    /// Appends what the output pipe holds now (at most `limit` bytes) to `buffer`.
    func readOutput(into buffer: inout [UInt8], limit: Int = 1 << 16) -> Read {
        read(output, into: &buffer, limit: limit)
    }

    func readStatuses(into buffer: inout [UInt8]) -> Read {
        read(statuses, into: &buffer, limit: 4096)
    }

    private func read(_ fd: Int32, into buffer: inout [UInt8], limit: Int) -> Read {
        var chunk = [UInt8](repeating: 0, count: limit)
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, limit) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
            return .data(n)
        }
        if n == 0 { return .closed }
        return .empty
    }

    /// SIGKILL to bubblewrap: its init, pid 1 of the sandbox, dies with it (--die-with-parent),
    /// and the kernel ends every process in the sandbox's pid namespace.
    func kill() async {
        if isRunning { Glibc.kill(pid, SIGKILL) }
        while isRunning { try? await Task.sleep(for: .milliseconds(1)) }
        shutDownChannels()
    }

    /// Reads then see the end, and writes fail: the descriptors stay this object's.
    private func shutDownChannels() {
        lock.withLock {
            guard !shutDown else { return }
            shutDown = true
            [commands, output, statuses].forEach { _ = Glibc.shutdown($0, Int32(SHUT_RDWR)) }
        }
    }
}
