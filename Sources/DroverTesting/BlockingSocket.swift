import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A plain blocking client socket, for speaking HTTP/1.1 by hand to a server on loopback or a
/// unix socket: the egress proxy's tests send it hostile bytes, and its benchmark times requests
/// on one kept-alive connection. Reads give up after 120 s. One caller at a time; from async code,
/// through `offPool`.
public final class BlockingSocket: @unchecked Sendable {
    static let readTimeoutSeconds = 120
    public let descriptor: Int32
    private var buffer: [UInt8] = []
    private var isOpen = true

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public convenience init(unixPath path: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        try self.init(family: AF_UNIX, address: address, describing: path)
    }

    public convenience init(tcpPort port: Int) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        try self.init(family: AF_INET, address: address, describing: "127.0.0.1:\(port)")
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    private init<Address>(family: Int32, address: Address, describing name: String) throws {
        descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = address
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<Address>.size)) }
        }
        guard descriptor >= 0, connected == 0 else {
            let reason = String(cString: strerror(errno))
            if descriptor >= 0 { Glibc.close(descriptor) }
            isOpen = false
            throw Failure(description: "cannot connect to \(name): \(reason)")
        }
        // Generous: on a cgroup v1 host the whole machine can stop creating processes and
        // threads for tens of seconds while a cgroup join waits for an RCU grace period (the
        // sandbox start-timeout test provokes one), and a 30 s timeout failed proxy tests that
        // were merely waiting it out.
        var timeout = timeval(tv_sec: Self.readTimeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(descriptor, $0.baseAddress!, $0.count) }
            guard n > 0 else { throw Failure(description: "write failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Everything until the peer closes the connection (or the read times out).
    public func readAll() throws -> String {
        while (try? fill()) != nil {}
        defer { buffer.removeAll() }
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Sends `request` and reads one response: its head, and `content-length` bytes of body
    /// unless `bodyless` (the answer to a CONNECT).
    public func exchange(_ request: String, bodyless: Bool = false) throws -> String {
        try send(request)
        let separator: [UInt8] = [13, 10, 13, 10]
        var headEnd = buffer.firstRange(of: separator)?.upperBound
        while headEnd == nil {
            try fill()
            headEnd = buffer.firstRange(of: separator)?.upperBound
        }
        let end = headEnd!
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        var length = 0
        if !bodyless {
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        while buffer.count < end + length { try fill() }
        let text = String(decoding: buffer[..<(end + length)], as: UTF8.self)
        buffer.removeFirst(end + length)
        return text
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n = read(descriptor, &chunk, chunk.count)
        // Told apart, since a stall and a close have different causes.
        if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
            throw Failure(description: "no answer within the \(Self.readTimeoutSeconds) s read timeout")
        }
        guard n > 0 else { throw Failure(description: n == 0 ? "the connection closed mid-response" : "read failed: errno \(errno)") }
        buffer += chunk[0..<n]
    }

    public func close() {
        if isOpen { Glibc.close(descriptor) }
        isOpen = false
    }

    deinit { close() }
}

/// Runs blocking work on a thread of its own. A blocking read on the cooperative pool holds one
/// of its few threads; two of them held at once stopped the egress proxy under test, which
/// decides each request in a task, and the test waited out its 30 s read timeout.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
