import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket and a unix socket opened the way a careless library would, without
/// close-on-exec: the stand-ins for the API's listener and a pooled Redis connection, for tests
/// that check a child Drover starts holds neither.
public struct LeakySockets: Sendable {
    public let tcp: Int32
    public let unix: Int32

    public struct SetupFailed: Error {}

    public init() throws {
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard tcp >= 0, bound == 0, listen(tcp, 1) == 0 else { throw SetupFailed() }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { throw SetupFailed() }
        Glibc.close(pair[1])
        self.tcp = tcp
        self.unix = pair[0]
    }

    /// What `/proc/self/fd` shows for each, such as `socket:[123456]`: a child holding either
    /// shows the same.
    public var identities: [String] {
        [tcp, unix].compactMap { fd in try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") }
    }

    public func close() {
        Glibc.close(tcp)
        Glibc.close(unix)
    }
}
