import DroverCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A unix-socket relay in front of a real Redis that, when armed, lets the next command reach
/// Redis and run, then breaks the connection instead of passing the reply on: the one network
/// failure after which a client cannot know whether its command ran, made to happen on cue.
public final class ReplyDroppingProxy: Sendable {
    public let path: String
    private let upstream: String
    private let listener: Int32
    private let armed = Locked(false)
    private let droppedReplies = Locked(0)

    public struct SetupFailed: Error, CustomStringConvertible {
        public let description: String
    }

    public init(upstream: String, path: String) throws {
        self.upstream = upstream
        self.path = path
        unlink(path)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0, Self.withAddress(path, { bind(listener, $0, $1) }) == 0, listen(listener, 16) == 0 else {
            throw SetupFailed(description: "cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
        self.listener = listener
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// The next reply from Redis, on any connection, is dropped and its connection broken.
    public func dropNextReply() { armed.withLock { $0 = true } }

    public var dropped: Int { droppedReplies.value }

    public func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
        unlink(path)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard server >= 0, Self.withAddress(upstream, { connect(server, $0, $1) }) == 0 else {
                Glibc.close(client)
                if server >= 0 { Glibc.close(server) }
                continue
            }
            let thread = Thread { [self] in relay(client: client, server: server) }
            thread.start()
        }
    }

    private func relay(client: Int32, server: Int32) {
        defer {
            Glibc.close(client)
            Glibc.close(server)
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
        while true {
            guard poll(&fds, 2, -1) > 0 else {
                if errno == EINTR { continue }
                return
            }
            for index in 0..<2 where fds[index].revents != 0 {
                let from = fds[index].fd
                let to = index == 0 ? server : client
                let count = read(from, &buffer, buffer.count)
                guard count > 0 else { return }
                if from == server {
                    let drop = armed.withLock { value -> Bool in
                        defer { value = false }
                        return value
                    }
                    if drop {
                        droppedReplies.withLock { $0 += 1 }
                        return
                    }
                }
                var sent = 0
                while sent < count {
                    let written = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, count - sent) }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return -1 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
