import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An HTTPS client for `bench egress`: one kept-alive TLS connection, straight to a server or
/// through the egress proxy's CONNECT, sending sequential GETs and waiting for each answer.
final class BenchHTTPSClient: Sendable {
    private let channel: any Channel
    private let collector: NIOLoopBound<ResponseCollector>
    private let port: Int

    private init(channel: any Channel, collector: NIOLoopBound<ResponseCollector>, port: Int) {
        self.channel = channel
        self.collector = collector
        self.port = port
    }

    /// TLS to 127.0.0.1:`port`, trusting `root`; through the proxy at `proxySocket` (CONNECT) when given.
    static func connect(port: Int, root: NIOSSLCertificate, proxySocket: String?) async throws -> BenchHTTPSClient {
        let group = MultiThreadedEventLoopGroup.singleton
        let bootstrap = ClientBootstrap(group: group)
        let channel = try await (proxySocket.map { bootstrap.connect(unixDomainSocketPath: $0) } ?? bootstrap.connect(host: "127.0.0.1", port: port))
            .get()
        if proxySocket != nil {
            let reply = channel.eventLoop.makePromise(of: String.self)
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(ConnectReply(reply: reply), name: "connect-reply")
            }.get()
            var request = channel.allocator.buffer(capacity: 64)
            request.writeString("CONNECT 127.0.0.1:\(port) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
            try await channel.writeAndFlush(request)
            let status = try await reply.futureResult.get()
            guard status.hasPrefix("HTTP/1.1 200") else { throw BenchFailure("CONNECT answered \(status.prefix(80))") }
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([root])
        // Through the proxy the peer is a unix socket, with no address to check a name against;
        // the chain is still checked, the same way in both modes.
        configuration.certificateVerification = .noHostnameVerification
        configuration.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        let collector = try await channel.eventLoop.submit {
            if proxySocket != nil { channel.pipeline.syncOperations.removeHandler(name: "connect-reply", promise: nil) }
            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            let collector = ResponseCollector()
            try channel.pipeline.syncOperations.addHandler(collector)
            return NIOLoopBound(collector, eventLoop: channel.eventLoop)
        }.get()
        return BenchHTTPSClient(channel: channel, collector: collector, port: port)
    }

    /// Sends `GET path` and waits for the whole answer; its status.
    func get(_ path: String, headers extra: [(String, String)] = []) async throws -> HTTPResponseStatus {
        let collector = collector
        let channel = channel
        let host = "127.0.0.1:\(port)"
        let answered = try await channel.eventLoop.submit {
            let promise = channel.eventLoop.makePromise(of: HTTPResponseStatus.self)
            collector.value.pending = promise
            var headers = HTTPHeaders([("host", host)])
            for (name, value) in extra { headers.add(name: name, value: value) }
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            return promise.futureResult
        }.get()
        return try await answered.get()
    }

    func close() async {
        try? await channel.close()
    }

    /// The proxy's answer to CONNECT, read as bytes up to its blank line.
    private final class ConnectReply: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        let reply: EventLoopPromise<String>
        var text = ""

        init(reply: EventLoopPromise<String>) {
            self.reply = reply
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            text += buffer.readString(length: buffer.readableBytes) ?? ""
            if text.contains("\r\n\r\n") { reply.succeed(text) }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            reply.fail(error)
        }
    }

    private final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        var pending: EventLoopPromise<HTTPResponseStatus>?
        private var status: HTTPResponseStatus = .ok

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = head.status
            case .body: break
            case .end:
                pending?.succeed(status)
                pending = nil
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            pending?.fail(error)
            pending = nil
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            pending?.fail(ChannelError.ioOnClosedChannel)
            pending = nil
        }
    }
}
