import Crypto
import DroverCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A real HTTP server on 127.0.0.1 for egress tests (HTTPS with a `tls` context): it answers
/// every request with 200, `origin saw METHOD URI` and the SHA-256 of its Authorization header
/// and body (never the values, so that a secret that reached it is not echoed back), and keeps
/// each request, so a test can check what reached it.
public final class LoopbackOrigin: Sendable {
    public struct Request: Sendable {
        public let head: HTTPRequestHead
        public let body: [UInt8]
    }
    /// A page of the test's own, in place of the usual answer.
    public struct Answer: Sendable {
        public var status: HTTPResponseStatus
        public var headers: [(String, String)]
        public var body: String

        public init(status: HTTPResponseStatus = .ok, headers: [(String, String)] = [], body: String = "") {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }
    public let channel: any Channel
    private let seen: Locked<[Request]>
    private let accepted: Locked<Int>

    public var port: Int { channel.localAddress?.port ?? 0 }
    public var requests: [HTTPRequestHead] { seen.value.map(\.head) }
    public var received: [Request] { seen.value }
    /// How many connections it has accepted.
    public var connections: Int { accepted.value }

    private init(channel: any Channel, seen: Locked<[Request]>, accepted: Locked<Int>) {
        self.channel = channel
        self.seen = seen
        self.accepted = accepted
    }

    public static func start(tls: NIOSSLContext? = nil, answer: (@Sendable (HTTPRequestHead) -> Answer?)? = nil) async throws -> LoopbackOrigin {
        let seen = Locked<[Request]>([])
        let accepted = Locked(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                accepted.withLock { $0 += 1 }
                return child.eventLoop.makeCompletedFuture {
                    if let tls { try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try child.pipeline.syncOperations.configureHTTPServerPipeline()
                    try child.pipeline.syncOperations.addHandler(Responder(seen: seen, answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return LoopbackOrigin(channel: channel, seen: seen, accepted: accepted)
    }

    /// What the origin's answer says of `text`: the hex SHA-256 of its bytes.
    public static func digest(_ text: String) -> String { digest(Array(text.utf8)) }

    static func digest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).lowercaseHex
    }

    public func stop() async {
        try? await channel.close()
    }

    private final class Responder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let seen: Locked<[Request]>
        let answer: (@Sendable (HTTPRequestHead) -> Answer?)?
        private var head: HTTPRequestHead?
        private var body: [UInt8] = []

        init(seen: Locked<[Request]>, answer: (@Sendable (HTTPRequestHead) -> Answer?)?) {
            self.seen = seen
            self.answer = answer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                self.body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                guard let head else { return }
                seen.withLock { $0.append(Request(head: head, body: self.body)) }
                if let custom = answer?(head) {
                    var headers = HTTPHeaders(custom.headers)
                    headers.replaceOrAdd(name: "content-length", value: String(custom.body.utf8.count))
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: custom.status, headers: headers))), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: custom.body)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                let authorization = head.headers.first(name: "authorization").map { LoopbackOrigin.digest($0) } ?? "none"
                let body =
                    "origin saw \(head.method) \(head.uri)\nauthorization sha256=\(authorization)\nbody sha256=\(LoopbackOrigin.digest(self.body)) length=\(self.body.count)\n"
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: String(body.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// A real TLS server (`openssl s_server -www`) on 127.0.0.1 with a certificate of its own, made
/// for the test: what it serves is only reachable through a CONNECT tunnel.
public struct LoopbackTLSOrigin {
    public let process: ChildProcess
    public let port: Int
    /// The server's certificate, for the client inside the sandbox to trust.
    public let certificate: String

    public static func start(in directory: URL) async throws -> LoopbackTLSOrigin? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return nil }
        let key = directory.appendingPathComponent("tls-key.pem").path
        let cert = directory.appendingPathComponent("tls-cert.pem").path
        let made = try ChildProcess(
            executable: "/usr/bin/openssl",
            arguments: [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        guard await made.exitCodeWhenDone() == 0 else { return nil }
        // A port the kernel just gave out and took back: free, barring a race nobody runs here.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress?.port ?? 0
        try await probe.close()
        let process = try ChildProcess(
            executable: "/usr/bin/openssl",
            arguments: ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-www", "-quiet"])
        let origin = LoopbackTLSOrigin(process: process, port: port, certificate: try String(contentsOfFile: cert, encoding: .utf8))
        // Ready when it accepts a connection.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return origin
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await process.kill()
        return nil
    }

    public func stop() async {
        await process.kill()
    }
}
