import Foundation
import Logging
import MCP

#if canImport(Glibc)
import Glibc
#endif

/// A local MCP server started by command (a Drover extension to the agent's `mcp_servers`),
/// speaking newline-delimited JSON-RPC on its standard input and output.
///
/// Its output is read on a thread of its own, never on Swift's cooperative pool. When the server
/// exits, `onClosed` runs, so its owner can fail the calls still waiting on it at once.
actor StdioServerTransport: Transport {
    nonisolated let logger = Logger(label: "drover.mcp.stdio")
    let pid: pid_t
    private let toServer: Int32
    private let fromServer: Int32
    private let messages: AsyncThrowingStream<Data, Error>
    private let continuation: AsyncThrowingStream<Data, Error>.Continuation
    private var onClosed: (@Sendable () async -> Void)?
    private var closed = false

    /// The server gets only `PATH`, `HOME` and `LANG` from Drover's environment, plus `environment`:
    /// Drover's own secrets stay out of it (I5).
    init(command: [String], environment: [String: String]) throws {
        guard let program = command.first else { throw MCPTransportError("mcp_servers[].command is empty: give the program and its arguments") }
        var stdinPipe: [Int32] = [0, 0]
        var stdoutPipe: [Int32] = [0, 0]
        guard pipe(&stdinPipe) == 0, pipe(&stdoutPipe) == 0 else { throw MCPTransportError("cannot create pipes: \(String(cString: strerror(errno)))") }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        for fd in stdinPipe + stdoutPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var env = ProcessInfo.processInfo.environment.filter { ["PATH", "HOME", "LANG"].contains($0.key) }
        env.merge(environment) { $1 }
        let argv = command.map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let envp = env.map { strdup("\($0.key)=\($0.value)") }
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let result = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envBuffer in
                posix_spawnp(&child, program, &actions, &attributes,
                             UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                             UnsafeMutablePointer(mutating: envBuffer.baseAddress!))
            }
        }
        close(stdinPipe[0])
        close(stdoutPipe[1])
        guard result == 0 else {
            close(stdinPipe[1])
            close(stdoutPipe[0])
            throw MCPTransportError("cannot start \(program): \(String(cString: strerror(result)))")
        }
        pid = child
        toServer = stdinPipe[1]
        fromServer = stdoutPipe[0]
        (messages, continuation) = AsyncThrowingStream.makeStream()
    }

    func whenClosed(_ handler: @escaping @Sendable () async -> Void) {
        onClosed = handler
    }

    func connect() async throws {
        let fd = fromServer
        let pid = pid
        let continuation = continuation
        Thread.detachNewThread { [self] in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                pending += buffer[..<count]
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = pending[..<newline]
                    pending.removeSubrange(...newline)
                    if !line.isEmpty { continuation.yield(Data(line)) }
                }
            }
            close(fd)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            Task { await self.serverExited() }
        }
    }

    private func serverExited() async {
        closed = true
        let handler = onClosed
        onClosed = nil
        await handler?()
    }

    func disconnect() async {
        continuation.finish()
        guard !closed else { return }
        closed = true
        close(toServer)
        // The server's whole process group: a wrapper script's children go too.
        kill(-pid, SIGTERM)
    }

    func send(_ data: Data) async throws {
        guard !closed else { throw MCPTransportError("the MCP server process has exited") }
        var bytes = Array(data)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(toServer, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw MCPTransportError("cannot write to the MCP server: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    func receive() -> AsyncThrowingStream<Data, Error> {
        messages
    }
}
