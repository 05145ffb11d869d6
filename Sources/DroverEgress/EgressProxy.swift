import DroverCore
import DroverTools
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The worker's egress proxy: the one way out of a sandbox whose network namespace is empty.
///
/// Each sandbox gets a unix socket of its own (`listen(at:route:)`), bound read-only into the
/// sandbox, where a relay on the sandbox's loopback (`drover-egress-forward`) passes its tools'
/// connections on. The proxy speaks HTTP/1.1 proxy requests: `CONNECT host:port` opens a tunnel
/// (HTTPS), and a request for an absolute `http://` URL is forwarded. Every connection is decided
/// by the route's policy through `EgressGate`: the proxy resolves the name and connects to the
/// address it checked. A refusal is an HTTP answer whose body says what to change.
///
/// With an `authority`, a CONNECT to a host that one of the route's credentials names is not
/// tunnelled but read: the proxy ends the sandbox's TLS with a certificate the authority signs,
/// replaces the credential's placeholder with its secret, and sends the request on over its own
/// TLS connection, checked against the system's trust store.
public final class EgressProxy: Sendable {
    public let gate: EgressGate
    public let authority: EgressAuthority?
    let group: any EventLoopGroup
    /// How long a connection to a destination may take to open.
    public let connectTimeout: TimeAmount

    public init(
        gate: EgressGate = EgressGate(), authority: EgressAuthority? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectTimeout: TimeAmount = .seconds(15)
    ) {
        self.gate = gate
        self.authority = authority
        self.group = group
        self.connectTimeout = connectTimeout
    }

    /// Listens on a new unix socket at `path` for one sandbox. The socket is made connectable by
    /// the sandbox's user (the directory holding it is the caller's to keep from everyone else).
    public func listen(at path: URL, route: EgressRoute) async throws -> EgressListener {
        let gate = self.gate
        let authority = self.authority
        let timeout = connectTimeout
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let pipeline = child.pipeline.syncOperations
                    try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)), name: "egress-decoder")
                    try pipeline.addHandler(HTTPResponseEncoder(configuration: .noFraming), name: "egress-encoder")
                    try pipeline.addHandler(
                        EgressRequestHandler(route: route, gate: gate, authority: authority, connectTimeout: timeout), name: "egress")
                }
            }
            .bind(unixDomainSocketPath: path.path, cleanupExistingSocketFile: true).get()
        // The sandbox's processes connect as its user (nobody when Drover runs as root).
        chmod(path.path, 0o666)
        return EgressListener(channel: channel, path: path, route: route)
    }
}

extension HTTPResponseEncoder.Configuration {
    /// Framing headers pass through as the destination sent them: the proxy never re-frames.
    static var noFraming: Self {
        var configuration = Self()
        configuration.automaticallySetFramingHeaders = false
        return configuration
    }
}

/// One sandbox's socket on the proxy.
public final class EgressListener: Sendable {
    let channel: any Channel
    public let path: URL
    public let route: EgressRoute

    init(channel: any Channel, path: URL, route: EgressRoute) {
        self.channel = channel
        self.path = path
        self.route = route
    }

    /// Stops accepting connections and removes the socket. Open connections end with the
    /// sandbox's processes, which end with it.
    public func close() async {
        try? await channel.close()
        unlink(path.path)
    }
}

/// Reads one proxy request at a time from a sandbox's connection, decides it, and either
/// forwards it (plain HTTP) or turns the connection into a tunnel (CONNECT).
final class EgressRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let route: EgressRoute
    let gate: EgressGate
    let authority: EgressAuthority?
    let connectTimeout: TimeAmount
    /// Inside an intercepted CONNECT: the one destination every request goes to, over TLS.
    let destination: (host: String, port: Int)?
    /// Inside an intercepted CONNECT that only a repository opened (the policy does not allow
    /// the host): requests other than the repository's git requests are refused.
    private var repositoryOnly: Bool

    private enum State {
        case idle
        /// Deciding and connecting; parts of the request that arrive meanwhile wait.
        case opening
        case forwarding(Channel)
        /// The request went out whole; waiting for the rest of the response.
        case awaitingResponse(Channel)
        /// The response is on its way to the sandbox; the next request waits for it.
        case responded
        case tunnel
        case closed
    }
    private var state = State.idle
    private var held: [HTTPServerRequestPart] = []
    private var admitted = false
    /// Whether the sandbox's side keeps the connection for another request.
    private var keepAlive = true
    private var current: (host: String, port: Int)?
    private var sent = 0
    private var received = 0
    /// The current request's placeholder replacement, when a credential applies to its host.
    private var substitution: SecretSubstitution?
    /// A request whose body has placeholders to replace is held whole, then sent with its new
    /// length.
    private var heldHead: HTTPRequestHead?
    private var heldBody: ByteBuffer?
    /// Past this a body cannot be held for replacement, and the request is refused (413).
    static let substitutedBodyLimit = 16 << 20
    /// An intercepted connection's TLS connection to its destination, kept between requests.
    private var idleUpstream: Channel?
    private var upstreamKeepAlive = false
    private var responseStarted = false

    init(
        route: EgressRoute, gate: EgressGate, authority: EgressAuthority?, connectTimeout: TimeAmount,
        destination: (host: String, port: Int)? = nil, repositoryOnly: Bool = false
    ) {
        self.route = route
        self.gate = gate
        self.authority = authority
        self.connectTimeout = connectTimeout
        self.destination = destination
        self.repositoryOnly = repositoryOnly
    }

    func channelActive(context: ChannelHandlerContext) {
        admitted = route.open()
        if !admitted {
            refuse(context: context, .tooManyConnections(limit: route.connectionLimit), host: "-", port: 0, count: false)
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        if admitted {
            admitted = false
            route.close()
        }
        switch state {
        case .forwarding(let upstream), .awaitingResponse(let upstream): upstream.close(promise: nil)
        default: break
        }
        idleUpstream?.close(promise: nil)
        idleUpstream = nil
        state = .closed
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .idle:
            guard case .head(let head) = part else { return }
            start(context: context, head)
        case .opening, .awaitingResponse, .responded:
            held.append(part)
        case .forwarding(let upstream):
            forward(part, to: upstream)
            if case .end = part { state = .awaitingResponse(upstream) }
        case .tunnel, .closed:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The sandbox's side finished sending: once nothing is in flight, the connection is done.
        if let event = event as? ChannelEvent, event == .inputClosed {
            keepAlive = false
            if case .idle = state { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .idle = state, error is HTTPParserError {
            refuse(context: context, .malformed(reason: "not an HTTP proxy request (\(error))"), host: "-", port: 0)
            return
        }
        // The sandbox's TLS client refused Drover's certificate: counted, so that `sessions
        // show` explains a client that ignores the sandbox's trust store.
        if let destination, error is NIOSSLError, case .idle = state, !seenRequest {
            route.record(
                host: destination.host, port: destination.port,
                verdict: "failed: TLS with the sandbox's client, which must trust Drover's egress authority")
        }
        context.close(promise: nil)
    }

    private var seenRequest = false

    // MARK: Requests

    private func start(context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        seenRequest = true
        // Outside a tunnel each request is decided afresh.
        if destination == nil { repositoryOnly = false }
        keepAlive = head.isKeepAlive
        isHead = head.method == .HEAD
        if head.method == .CONNECT {
            guard destination == nil else {
                return refuse(context: context, .malformed(reason: "CONNECT inside a CONNECT tunnel is not supported"), host: "-", port: 0)
            }
            guard let (host, port) = Self.authority(head.uri, defaultPort: nil) else {
                return refuse(context: context, .malformed(reason: "CONNECT needs host:port, not '\(head.uri.prefix(200))'"), host: "-", port: 0)
            }
            // Read only where a credential's placeholder may need its secret; everything else
            // stays end to end.
            let repositories = route.repositories(host: host, port: port)
            if let authority, !repositories.isEmpty || SecretSubstitution(route.secrets, host: HostPattern.normalize(host)) != nil {
                return open(
                    context: context, host: host, port: port, speaksHTTP: false, countsRequest: false, forRepository: !repositories.isEmpty
                ) { [self] upstream in
                    intercept(context: context, to: upstream, host: host, port: port, authority: authority)
                }
            }
            return open(context: context, host: host, port: port, speaksHTTP: false) { [self] upstream in tunnel(context: context, to: upstream) }
        }
        guard let target = destination.map({ (host: $0.host, port: $0.port, path: head.uri) }) ?? Self.absoluteHTTP(head.uri) else {
            let reason =
                head.uri.lowercased().hasPrefix("https://")
                ? "an https:// URL must go through CONNECT; set HTTPS_PROXY, which the sandbox already has"
                : "this is Drover's egress proxy: send absolute http:// URLs (set HTTP_PROXY, which the sandbox already has)"
            return refuse(context: context, .malformed(reason: reason), host: "-", port: 0)
        }
        if destination != nil, !target.path.hasPrefix("/") {
            return refuse(
                context: context, .malformed(reason: "inside a tunnel, a request names its path (/...), not '\(target.path.prefix(100))'"),
                host: target.host, port: target.port)
        }
        // The destination is the URL's: a Host header that names another host would send the
        // request somewhere the policy never saw.
        if let given = head.headers.first(name: "host"),
            let (hostHeader, portHeader) = Self.authority(given, defaultPort: destination == nil ? 80 : 443),
            HostPattern.normalize(hostHeader) != HostPattern.normalize(target.host) || portHeader != target.port
        {
            return refuse(
                context: context, .malformed(reason: "the Host header (\(given.prefix(100))) does not match the URL's host"), host: target.host,
                port: target.port)
        }
        var outgoing = HTTPRequestHead(version: .http1_1, method: head.method, uri: target.path, headers: head.headers)
        for name in Self.hopByHop + (head.headers["connection"].flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } })
        {
            outgoing.headers.remove(name: name)
        }
        if !outgoing.headers.contains(name: "host") {
            let defaultPort = destination == nil ? 80 : 443
            outgoing.headers.add(name: "host", value: target.port == defaultPort ? target.host : "\(target.host):\(target.port)")
        }
        let repository = route.repositories(host: target.host, port: target.port).first { $0.covers(target.path) }
        if repositoryOnly, repository == nil {
            return refuse(
                context: context, .repositoryOnly(host: HostPattern.normalize(target.host), path: String(target.path.prefix(200))), host: target.host,
                port: target.port)
        }
        substitution = SecretSubstitution(route.secrets, host: HostPattern.normalize(target.host))
        if let authorization = repository?.authorization {
            // The repository's token, whatever the sandbox sent: its remote holds none.
            outgoing.headers.replaceOrAdd(name: "authorization", value: authorization)
        }
        if let substitution {
            outgoing.headers = substitution.headers(outgoing.headers).0
            let hasBody = head.headers.contains(name: "transfer-encoding") || (Int(head.headers.first(name: "content-length") ?? "") ?? 0) > 0
            if substitution.touchesBody, hasBody { heldBody = context.channel.allocator.buffer(capacity: 0) }
        }
        let send = { [self] (upstream: Channel) in
            state = .forwarding(upstream)
            responseStarted = false
            forward(.head(outgoing), to: upstream)
            // What follows this request's end is the next request's, and waits again.
            replayHeld(context: context)
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
        // Inside an intercepted tunnel the destination is fixed, and its connection is kept.
        if destination != nil, let upstream = idleUpstream, upstream.isActive {
            idleUpstream = nil
            current = (target.host, target.port)
            sent = 0
            received = 0
            route.record(host: target.host, port: target.port, verdict: EgressUsage.Key.allowed)
            return send(upstream)
        }
        idleUpstream?.close(promise: nil)
        idleUpstream = nil
        // One request per connection out: the next may go elsewhere, and is decided afresh.
        if destination == nil { outgoing.headers.add(name: "connection", value: "close") }
        open(context: context, host: target.host, port: target.port, speaksHTTP: true, forRepository: repository != nil, then: send)
    }

    static let hopByHop = ["connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te", "trailer", "upgrade"]

    /// Decides the destination and connects to the address the gate checked. A tunnel's
    /// connection carries raw bytes; a forwarded request's gets an HTTP client codec.
    /// `forRepository`: the session has a repository there, so a host the policy does not allow
    /// is decided again as the worker's own connections for an agent are (public, or internal);
    /// the connection then serves the repository's git requests only.
    private func open(
        context: ChannelHandlerContext, host: String, port: Int, speaksHTTP: Bool, countsRequest: Bool = true, forRepository: Bool = false,
        then: @escaping (Channel) -> Void
    ) {
        state = .opening
        // Nothing more is read from the sandbox until the destination is open: what it sends
        // meanwhile waits in the socket, not in the worker's memory.
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        current = (host, port)
        sent = 0
        received = 0
        let gate = self.gate
        let policy = route.policy
        let mcpHosts = route.mcpHosts
        let loop = context.eventLoop
        let decided = loop.makeFutureWithTask { () -> (Result<SocketAddress, EgressRefusal>, Bool) in
            let decision = await gate.decide(host: host, port: port, policy: policy, mcpHosts: mcpHosts)
            guard forRepository, case .failure(let refusal) = decision, refusal.isPolicyRefusal else { return (decision, false) }
            return (await gate.decideForAgent(host: host, port: port), true)
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        decided.assumeIsolated().whenSuccess { [self] (decision: Result<SocketAddress, EgressRefusal>, onlyRepository: Bool) in
            guard case .opening = state else { return }
            if onlyRepository { repositoryOnly = true }
            switch decision {
            case .failure(let refusal):
                refuse(context: context, refusal, host: host, port: port)
            case .success(let address):
                ClientBootstrap(group: loop)
                    .connectTimeout(connectTimeout)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { if speaksHTTP { try bound.value.configureUpstream(channel) } }
                    }
                    .connect(to: address)
                    .assumeIsolated()
                    .whenComplete { [self] result in
                        switch result {
                        case .success(let upstream):
                            guard case .opening = state else {
                                upstream.close(promise: nil)
                                return
                            }
                            // An intercepted tunnel counts the requests inside it instead.
                            if countsRequest { route.record(host: host, port: port, verdict: EgressUsage.Key.allowed) }
                            then(upstream)
                        case .failure(let error):
                            guard case .opening = state else { return }
                            route.record(host: host, port: port, verdict: "failed: could not connect")
                            respond(
                                context: context, status: .badGateway, reason: "Drover's egress proxy could not connect to \(host):\(port): \(error)",
                                close: true)
                        }
                    }
            }
        }
    }

    /// The upstream side of an HTTP request: TLS inside an intercepted tunnel, a client codec,
    /// and a relay back here.
    private func configureUpstream(_ channel: Channel) throws {
        guard case .opening = state else { throw ChannelError.ioOnClosedChannel }
        try addUpstreamHandlers(channel)
    }

    private func addUpstreamHandlers(_ channel: Channel) throws {
        if let destination, let authority {
            // An IP literal is checked against the certificate's addresses, a name by SNI.
            let name = IPAddressClass.bytes(of: destination.host) == nil ? destination.host : nil
            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: authority.upstreamContext, serverHostname: name))
        }
        // Informational answers (100 Continue) are passed on: a client that sent
        // `Expect: 100-continue` waits for one before it sends its body.
        try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)))
        try channel.pipeline.syncOperations.addHandler(UpstreamResponseRelay(client: self))
    }

    private func forward(_ part: HTTPServerRequestPart, to upstream: Channel) {
        if heldBody != nil { return hold(part, for: upstream) }
        switch part {
        case .head(let head):
            upstream.write(HTTPClientRequestPart.head(head), promise: nil)
        case .body(let buffer):
            sent += buffer.readableBytes
            upstream.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        case .end(let trailers):
            upstream.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
            return
        }
        upstream.flush()
    }

    /// Collects a request whose body carries placeholders, and sends it whole once it ended,
    /// with the secrets in place and its length counted again.
    private func hold(_ part: HTTPServerRequestPart, for upstream: Channel) {
        switch part {
        case .head(let head):
            heldHead = head
        case .body(var buffer):
            guard let held = heldBody, held.readableBytes + buffer.readableBytes <= Self.substitutedBodyLimit else {
                heldBody = nil
                upstream.close(promise: nil)
                guard let context = responseContext else { return }
                return respond(
                    context: context, status: .payloadTooLarge,
                    reason:
                        "a request body that may carry a credential's placeholder is held whole to replace it, and this one is over \(Self.substitutedBodyLimit >> 20) MiB; turn the credential's injection_location.body off, or send less",
                    close: true)
            }
            heldBody!.writeBuffer(&buffer)
        case .end(let trailers):
            guard var head = heldHead, var held = heldBody else { return }
            heldHead = nil
            heldBody = nil
            var bytes = held.readBytes(length: held.readableBytes) ?? []
            _ = substitution?.body(&bytes)
            head.headers.remove(name: "transfer-encoding")
            head.headers.replaceOrAdd(name: "content-length", value: String(bytes.count))
            sent += bytes.count
            upstream.write(HTTPClientRequestPart.head(head), promise: nil)
            upstream.write(HTTPClientRequestPart.body(.byteBuffer(upstream.allocator.buffer(bytes: bytes))), promise: nil)
            upstream.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
        }
    }

    // MARK: Responses from the destination

    private var responseContext: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        responseContext = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        responseContext = nil
    }

    private var closeAfterResponse = false
    /// A response to HEAD has no body whatever its headers say; the encoder, not paired with
    /// the decoder, cannot know, so chunked framing is taken off its head.
    private var isHead = false

    func upstreamResponse(_ part: HTTPClientResponsePart, from upstream: Channel) {
        guard let context = responseContext else { return upstream.close(promise: nil) }
        switch part {
        case .head(var head) where (100..<200).contains(head.status.code) && head.status != .switchingProtocols:
            // An interim answer; the final one follows on the same exchange.
            for name in Self.hopByHop { head.headers.remove(name: name) }
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        case .head(var head):
            responseStarted = true
            upstreamKeepAlive = head.isKeepAlive
            for name in Self.hopByHop { head.headers.remove(name: name) }
            if isHead { head.headers.remove(name: "transfer-encoding") }
            // A body that ends when the destination closes can only end here the same way.
            let framed = head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding")
            let bodyless = isHead || head.status.code < 200 || head.status == .noContent || head.status == .notModified
            closeAfterResponse = !keepAlive || (!framed && !bodyless)
            if closeAfterResponse { head.headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            received += buffer.readableBytes
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable { upstream.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
        case .end(let trailers):
            finish()
            // Before the close: the destination's channel going inactive must not read as an
            // early end of this response.
            state = .responded
            if destination != nil, upstreamKeepAlive, upstream.isActive {
                idleUpstream = upstream
            } else {
                upstream.close(promise: nil)
            }
            let closing = closeAfterResponse
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { [self] _ in
                if closing {
                    context.close(promise: nil)
                } else {
                    nextRequest(context: context)
                }
            }
        }
    }

    func upstreamClosed(_ upstream: Channel) {
        if upstream === idleUpstream { idleUpstream = nil }
        guard let context = responseContext else { return }
        switch state {
        case .forwarding(let current), .awaitingResponse(let current):
            guard current === upstream else { return }
            finish()
            state = .closed
            context.close(promise: nil)
        default: break
        }
    }

    /// The destination's connection failed (its TLS certificate, most often): said to the
    /// sandbox when no response has begun, so the cause is not lost in a bare close.
    func upstreamFailed(_ error: Error, _ upstream: Channel) {
        guard let context = responseContext, !responseStarted else { return }
        switch state {
        case .forwarding(let current), .awaitingResponse(let current):
            guard current === upstream, let (host, port) = self.current else { return }
            finish()
            route.record(
                host: host, port: port, verdict: "failed: \(error is NIOSSLError ? "TLS with the destination" : "the destination's connection")")
            respond(context: context, status: .badGateway, reason: "Drover's egress proxy could not talk to \(host):\(port): \(error)", close: true)
        default: break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        switch state {
        case .forwarding(let upstream), .awaitingResponse(let upstream):
            upstream.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenComplete { _ in }
        default: break
        }
        context.fireChannelWritabilityChanged()
    }

    /// The response is done; requests the sandbox sent meanwhile (pipelined) are taken in turn.
    private func nextRequest(context: ChannelHandlerContext) {
        state = .idle
        current = nil
        replayHeld(context: context)
    }

    /// Reads the parts held while the handler was busy, in order, as if they arrived now.
    private func replayHeld(context: ChannelHandlerContext) {
        let waiting = held
        held = []
        for part in waiting { channelRead(context: context, data: NIOAny(part)) }
    }

    /// Adds what the finished exchange moved to the route's counts, once.
    private func finish() {
        guard let (host, port) = current else { return }
        if sent > 0 || received > 0 {
            route.record(host: host, port: port, verdict: EgressUsage.Key.allowed, requests: 0, sent: sent, received: received)
        }
        current = nil
    }

    // MARK: Tunnels

    /// What a tunnel and an intercepted CONNECT both do as this handler hands the connection
    /// on: the 200 goes out as raw bytes (the encoder is removed first), and the connection slot
    /// goes back with the channel, since this handler leaves the pipeline and never sees the
    /// connection close. Held by the handler, every tunnel kept one for good, and a sandbox's
    /// 257th HTTPS connection was refused.
    private func establish(context: ChannelHandlerContext) {
        state = .tunnel
        current = nil
        if admitted {
            admitted = false
            let route = route
            context.channel.closeFuture.whenComplete { _ in route.close() }
        }
        context.pipeline.syncOperations.removeHandler(name: "egress-encoder", promise: nil)
        var established = context.channel.allocator.buffer(capacity: 64)
        established.writeString("HTTP/1.1 200 Connection established\r\n\r\n")
        context.channel.writeAndFlush(established, promise: nil)
    }

    private func tunnel(context: ChannelHandlerContext, to upstream: Channel) {
        let (host, port) = current ?? ("-", 0)
        establish(context: context)
        let pipeline = context.pipeline.syncOperations
        let inward = TunnelHalf(route: route, host: host, port: port, direction: .sent)
        let outward = TunnelHalf(route: route, host: host, port: port, direction: .received)
        inward.partner = outward
        outward.partner = inward
        try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        do {
            try upstream.pipeline.syncOperations.addHandler(outward)
            // Bytes the sandbox sent after its CONNECT (a TLS hello, pipelined) are in the
            // decoder: removing it hands them on, to the tunnel added here in this handler's place.
            try pipeline.addHandler(inward, position: .after(self))
            pipeline.removeHandler(context: context, promise: nil)
            pipeline.removeHandler(name: "egress-decoder", promise: nil)
        } catch {
            upstream.close(promise: nil)
            context.close(promise: nil)
        }
    }

    // MARK: Intercepted tunnels

    /// Turns a CONNECT into a TLS server of the proxy's own, for `host`, with a new handler
    /// behind it that sends every request to `host` over `upstream`, made TLS here too.
    private func intercept(context: ChannelHandlerContext, to upstream: Channel, host: String, port: Int, authority: EgressAuthority) {
        let serverContext: NIOSSLContext
        do {
            serverContext = try authority.serverContext(for: host)
        } catch {
            upstream.close(promise: nil)
            return respond(
                context: context, status: .internalServerError,
                reason: "Drover's egress authority could not make a certificate for \(host): \(error)", close: true)
        }
        establish(context: context)
        let inner = EgressRequestHandler(
            route: route, gate: gate, authority: authority, connectTimeout: connectTimeout, destination: (host, port), repositoryOnly: repositoryOnly)
        let pipeline = context.pipeline.syncOperations
        do {
            try inner.addUpstreamHandlers(upstream)
            inner.idleUpstream = upstream
            // Bytes the sandbox sent after its CONNECT (its TLS hello) are in the old decoder:
            // removed last, it hands them to the TLS server added behind it.
            let decoder = try pipeline.context(name: "egress-decoder")
            try pipeline.addHandlers(
                [
                    NIOSSLServerHandler(context: serverContext), ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)),
                    HTTPResponseEncoder(configuration: .noFraming), inner,
                ], position: .after(decoder.handler))
            pipeline.removeHandler(context: context, promise: nil)
            pipeline.removeHandler(name: "egress-decoder", promise: nil)
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        } catch {
            upstream.close(promise: nil)
            context.close(promise: nil)
        }
    }

    // MARK: Answers of the proxy's own

    private func refuse(context: ChannelHandlerContext, _ refusal: EgressRefusal, host: String, port: Int, count: Bool = true) {
        if count { route.record(host: host, port: port, verdict: refusal.verdict) }
        respond(
            context: context, status: HTTPResponseStatus(statusCode: refusal.status), reason: refusal.description, close: true,
            verdict: refusal.verdict)
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, reason: String, close: Bool, verdict: String? = nil) {
        state = .closed
        var headers = HTTPHeaders()
        let body = reason + "\n"
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "connection", value: "close")
        if let verdict { headers.add(name: "x-drover-egress", value: verdict) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if close { context.close(promise: nil) }
        }
    }

    // MARK: Parsing

    /// `host:port` (or `[v6]:port`), with `defaultPort` when the port is left out.
    static func authority(_ text: String, defaultPort: Int?) -> (String, Int)? {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") { port = Int(rest.dropFirst()) } else if !rest.isEmpty { return nil }
        } else if let colon = host.lastIndex(of: ":") {
            port = Int(host[host.index(after: colon)...])
            host = host[..<colon]
        }
        guard let port, !host.isEmpty else { return nil }
        return (String(host), port)
    }

    /// The destination of an absolute `http://` URL and the path to send it.
    static func absoluteHTTP(_ uri: String) -> (host: String, port: Int, path: String)? {
        guard uri.lowercased().hasPrefix("http://") else { return nil }
        let rest = uri.dropFirst("http://".count)
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var hostAndPort = rest[..<end]
        // Credentials in the URL are the sandbox's business, not the route's.
        if let at = hostAndPort.lastIndex(of: "@") { hostAndPort = hostAndPort[hostAndPort.index(after: at)...] }
        guard let (host, port) = authority(String(hostAndPort), defaultPort: 80) else { return nil }
        var path = String(rest[end...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        return (host, port, path)
    }
}

/// Hands a destination's response parts to the request handler, on the same event loop.
final class UpstreamResponseRelay: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let client: EgressRequestHandler

    init(client: EgressRequestHandler) {
        self.client = client
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.upstreamResponse(unwrapInboundIn(data), from: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.upstreamClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        client.upstreamFailed(error, context.channel)
        context.close(promise: nil)
    }
}

/// One side of a tunnel: bytes read here are written to the partner. Reading pauses while the
/// partner cannot take more, so a fast side never fills the worker's memory.
final class TunnelHalf: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Direction { case sent, received }

    var partner: TunnelHalf?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let route: EgressRoute
    private let host: String
    private let port: Int
    private let direction: Direction
    private var bytes = 0

    init(route: EgressRoute, host: String, port: Int, direction: Direction) {
        self.route = route
        self.host = host
        self.port = port
        self.direction = direction
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The client side had reads paused while the tunnel opened.
        context.read()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bytes += buffer.readableBytes
        partner?.write(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        report()
        partner?.closeAll()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            partner?.closeOutput()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.isWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    private func write(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func flush() {
        context?.flush()
    }

    private func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    private func closeOutput() {
        context?.close(mode: .output, promise: nil)
    }

    private func closeAll() {
        context?.close(promise: nil)
    }

    private func report() {
        guard bytes > 0 else { return }
        route.record(
            host: host, port: port, verdict: EgressUsage.Key.allowed, requests: 0, sent: direction == .sent ? bytes : 0,
            received: direction == .received ? bytes : 0)
        bytes = 0
    }
}
