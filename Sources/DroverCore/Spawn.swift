import CSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one place Drover starts a child process.
///
/// A child gets exactly the descriptors its `Spawn` names and nothing else: every other
/// descriptor of Drover's (pooled Redis sockets, the API's listener, SQLite files, another
/// sandbox's pipes) is closed in the child before it runs, whether or not whoever opened it
/// remembered close-on-exec. A sandbox that inherited a Redis socket could speak raw Redis to the
/// control plane; this makes that impossible by construction rather than by care at each `open`.
///
/// The child also starts with an empty signal mask and default handlers: spawned from a
/// libdispatch thread it would otherwise inherit blocked SIGTERM and SIGINT and ignore them. It
/// is spawned from `SpawnThread`, which never ends, so that a parent-death signal it asks for
/// fires when Drover dies, not when some pool thread retires.
public struct Spawn: Sendable {
    /// Where one of the child's descriptors comes from.
    public enum Source: Sendable, Equatable {
        /// A descriptor of this process, duplicated into the child.
        case descriptor(Int32)
        /// A file the child opens before it runs.
        case file(String, flags: Int32, mode: mode_t = 0o600)

        public static let devNull = Source.file("/dev/null", flags: O_RDWR)
    }

    public var executable: String
    public var arguments: [String]
    /// The child's whole environment: nothing of Drover's own is passed unless named here.
    public var environment: [String: String]
    /// The child's descriptors by number. Any number not here is closed.
    public var descriptors: [Int32: Source]
    /// Look `executable` up on the child's PATH when it has no slash.
    public var searchPath = false
    /// Its own process group, so that a terminal's Ctrl-C reaches only Drover, which then stops
    /// the child in order.
    public var newProcessGroup = true

    public init(
        executable: String, arguments: [String], environment: [String: String],
        descriptors: [Int32: Source] = [0: .devNull, 1: .devNull, 2: .devNull]
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.descriptors = descriptors
    }

    public struct Failure: Error, CustomStringConvertible {
        public let executable: String
        public let code: Int32
        public var description: String { "cannot start \(executable): \(String(cString: strerror(code)))" }
    }

    /// Starts the child and returns its pid.
    public func start() throws(Failure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        // Descriptors passed from this process move in two steps, through numbers above every
        // source and target, so that one target can never overwrite another's source. The second
        // step's dup2 also clears close-on-exec on the copy the child keeps.
        let targets = descriptors.keys.sorted()
        let sources = descriptors.values.compactMap { if case .descriptor(let fd) = $0 { fd } else { nil } }
        let staging = (targets + sources).max().map { $0 + 1 } ?? 0
        var staged: [Int32: Int32] = [:]
        for (index, target) in targets.enumerated() {
            if case .descriptor(let fd) = descriptors[target] {
                let high = staging + Int32(index)
                posix_spawn_file_actions_adddup2(&actions, fd, high)
                staged[target] = high
            }
        }
        for target in targets {
            switch descriptors[target]! {
            case .descriptor:
                posix_spawn_file_actions_adddup2(&actions, staged[target]!, target)
            case .file(let path, let flags, let mode):
                posix_spawn_file_actions_addopen(&actions, target, path, flags, mode)
            }
        }
        // Everything above the highest target goes, the staging copies included.
        let firstClosed = (targets.last ?? -1) + 1
        guard drover_spawn_addclosefrom(&actions, firstClosed) == 0 else { throw Failure(executable: executable, code: errno) }
        // Gaps below the highest target are closed one by one.
        for fd in 0..<firstClosed where descriptors[fd] == nil {
            posix_spawn_file_actions_addclose(&actions, fd)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        // From the one thread that outlives every child: see SpawnThread.
        let result = SpawnThread.shared.perform {
            (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
                (envp + [nil]).withUnsafeBufferPointer { envBuffer in
                    let argv = UnsafeMutablePointer(mutating: argvBuffer.baseAddress!)
                    let envp = UnsafeMutablePointer(mutating: envBuffer.baseAddress!)
                    return searchPath
                        ? posix_spawnp(&child, executable, &actions, &attributes, argv, envp)
                        : posix_spawn(&child, executable, &actions, &attributes, argv, envp)
                }
            }
        }
        guard result == 0 else { throw Failure(executable: executable, code: result) }
        return child
    }

    /// A pipe whose ends are both close-on-exec from the start (pipe2 with O_CLOEXEC): a child
    /// spawned meanwhile on another thread holds neither.
    public static func pipe() throws(Failure) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard drover_pipe_cloexec(&fds) == 0 else { throw Failure(executable: "pipe2", code: errno) }
        return (fds[0], fds[1])
    }

    /// Marks a descriptor a library opened close-on-exec.
    public static func setCloseOnExec(_ fd: Int32) {
        _ = drover_set_cloexec(fd)
    }
}
