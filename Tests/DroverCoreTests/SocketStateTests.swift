import DroverCore
import Foundation
import Testing

@Suite("Socket state")
struct SocketStateTests {
    @Test("a socket's peer and its queues each way are read from the kernel")
    func queues() throws {
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { pair.forEach { close($0) } }
        let bytes = Array("EVALSHA".utf8)
        #expect(write(pair[0], bytes, bytes.count) == bytes.count)
        let sender = try #require(SocketState(of: pair[0]))
        let receiver = try #require(SocketState(of: pair[1]))
        #expect(sender.peerPID == getpid() && sender.unreadByPeer > 0 && sender.unreadHere == 0, "\(sender)")
        #expect(receiver.unreadHere == bytes.count && receiver.identity.hasPrefix("socket:["), "\(receiver)")
        var buffer = [UInt8](repeating: 0, count: 64)
        #expect(read(pair[1], &buffer, buffer.count) == bytes.count)
        #expect(SocketState(of: pair[0])?.unreadByPeer == 0)
        #expect(SocketState(of: pair[0])?.description.contains("the peer has read everything sent") == true)
        #expect(SocketState(of: -1) == nil)
    }
}
