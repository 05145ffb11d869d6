import DroverCore
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
    /// Drover's own secrets stay out of it (I5, docs/ARCHITECTURE.md).
    init(command: [String], environment: [String: String]) throws {
        guard let program = command.first else { throw MCPTransportError("mcp_servers[].command is empty: give the program and its arguments") }
        let stdinPipe: (read: Int32, write: Int32)
        let stdoutPipe: (read: Int32, write: Int32)
        do {
            stdinPipe = try Spawn.pipe()
            stdoutPipe = try Spawn.pipe()
        } catch {
            throw MCPTransportError("cannot create pipes: \(error)")
        }
        var env = ProcessInfo.processInfo.environment.filter { ["PATH", "HOME", "LANG"].contains($0.key) }
        env.merge(environment) { $1 }
        // Its pipes and /dev/null for errors, nothing else: no Redis socket, no listener.
        var spawn = Spawn(
            executable: program, arguments: Array(command.dropFirst()), environment: env,
            descriptors: [
                0: .descriptor(stdinPipe.read), 1: .descriptor(stdoutPipe.write),
                2: .file("/dev/null", flags: O_WRONLY),
            ])
        spawn.searchPath = true
        defer {
            close(stdinPipe.read)
            close(stdoutPipe.write)
        }
        let child: pid_t
        do {
            child = try spawn.start()
        } catch {
            close(stdinPipe.write)
            close(stdoutPipe.read)
            throw MCPTransportError("\(error)")
        }
        pid = child
        toServer = stdinPipe.write
        fromServer = stdoutPipe.read
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
