import CSpawn
import Foundation

/// What a connected socket looks like now, for an error that must say why a reply never came:
/// which process is at the other end, and what still sits in the queues each way.
public struct SocketState: Sendable, CustomStringConvertible {
    public let descriptor: Int32
    /// What /proc says the descriptor is (`socket:[123456]`).
    public let identity: String
    /// The peer's process id, for a unix socket.
    public let peerPID: Int32?
    /// Send-buffer memory still held, in bytes: more than zero while the peer has not read all we
    /// sent (for unix sockets the kernel counts its buffers, not only the payload).
    public let unreadByPeer: Int
    /// Bytes received and not read here.
    public let unreadHere: Int

    public init?(of fd: Int32) {
        var peer: Int32 = -1
        var out: Int32 = 0
        var inbound: Int32 = 0
        guard fd >= 0, drover_socket_state(fd, &peer, &out, &inbound) == 0 else { return nil }
        descriptor = fd
        identity = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "?"
        peerPID = peer > 0 ? peer : nil
        unreadByPeer = Int(out)
        unreadHere = Int(inbound)
    }

    public var description: String {
        let peer = peerPID.map { "peer pid \($0)" } ?? "peer unknown"
        return
            "fd \(descriptor) \(identity), \(peer), \(unreadByPeer == 0 ? "the peer has read everything sent" : "the peer has not read what was sent (\(unreadByPeer) bytes of buffers held)"), \(unreadHere) bytes received and not read here"
    }
}
