import DroverCore
import DroverEgress
import DroverTesting
import DroverTools
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import DroverHands

func egressRoot() -> URL {
    scratchDirectory("egresstest")
}

func egressPool(_ root: URL, gate: EgressGate = EgressGate(), authority: EgressAuthority? = nil) -> SandboxPool {
    var settings = SandboxPoolSettings()
    settings.warmPerConfiguration = 0
    settings.limits.wallClock = .seconds(60)
    settings.egressGate = gate
    settings.egressAuthority = authority
    return SandboxPool(root: root, settings: settings)
}

func limited(_ hosts: [HostPattern]) -> EnvironmentConfig {
    EnvironmentConfig(network: NetworkPolicy(access: .limited, allowedHosts: hosts))
}

/// `curl` in the sandbox, printing the status of the answer and of a CONNECT after the body.
/// The test servers are on the host's loopback, which the sandbox's NO_PROXY would send to the
/// sandbox's own: `--noproxy ''` sends everything to the proxy, as hostile code may.
func curl(_ arguments: String) -> String {
    "curl -sS --noproxy '' --max-time 30 -w '\\nstatus=%{http_code} connect=%{http_connect}\\n' \(arguments) 2>&1"
}

@Suite("Egress proxy", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct EgressProxyTests {
    @Test("a limited sandbox reaches its allowed hosts only through the proxy, which forwards, refuses with the fix, and counts")
    func limitedSandbox() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origin = try await LoopbackOrigin.start()
        let hands = egressPool(root)
        let session = SessionID.make()
        let sandbox = try await hands.checkout(session, environment: limited(["127.0.0.1"]))

        let allowed = try await sandbox.run(curl("http://127.0.0.1:\(origin.port)/hello?x=1"))
        #expect(allowed.output.contains("origin saw GET /hello?x=1") && allowed.output.contains("status=200"), "\(allowed.output)")
        let head = try #require(origin.requests.last)
        #expect(head.uri == "/hello?x=1")
        #expect(head.headers["host"] == ["127.0.0.1:\(origin.port)"])
        #expect(!head.headers.contains(name: "proxy-connection") && !head.headers.contains(name: "proxy-authorization"))

        // Not listed: refused, and the body names the host and the field to change.
        let refused = try await sandbox.run(curl("http://localhost:\(origin.port)/"))
        #expect(refused.output.contains("status=403"), "\(refused.output)")
        #expect(refused.output.contains("refused localhost") && refused.output.contains("config.networking.allowed_hosts"), "\(refused.output)")
        // A Host header naming another host than the URL would take the request past the policy.
        let smuggled = try await sandbox.run(curl("-H 'Host: localhost:\(origin.port)' http://127.0.0.1:\(origin.port)/smuggled"))
        #expect(smuggled.output.contains("status=400") && smuggled.output.contains("Host header"), "\(smuggled.output)")
        #expect(!origin.requests.contains { $0.uri == "/smuggled" })

        // The proxy is the only way out: the sandbox's own network reaches nothing.
        let direct = try await sandbox.run(curl("--noproxy '*' http://127.0.0.1:\(origin.port)/direct"))
        #expect(direct.output.contains("status=000"), "\(direct.output)")
        #expect(!origin.requests.contains { $0.uri == "/direct" })
        let variables = try await sandbox.run("env | grep -i _proxy= | sort")
        #expect(variables.output.contains("HTTPS_PROXY=http://127.0.0.1:3128") && variables.output.contains("http_proxy=http://127.0.0.1:3128"))

        let usage = try #require(await hands.egressUsage(session))
        #expect(usage.session == session)
        let forwarded = try #require(usage.entries.first { $0.key.host == "127.0.0.1" && $0.key.verdict == "allowed" }?.value)
        #expect(forwarded.requests == 1 && forwarded.bytesReceived > 0, "\(usage)")
        #expect(usage.entries.contains { $0.key.host == "localhost" && $0.key.verdict == "refused: host not allowed" && $0.value.requests == 1 })
        await hands.shutdown()
        await origin.stop()
    }

    @Test("HTTPS goes through a CONNECT tunnel to a real TLS server, decided by the same policy")
    func tunnel() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        guard let origin = try await LoopbackTLSOrigin.start(in: root) else {
            Issue.record("openssl could not start a TLS server")
            return
        }
        let hands = egressPool(root.appendingPathComponent("hands"))
        let session = SessionID.make()
        let sandbox = try await hands.checkout(session, environment: limited(["127.0.0.1"]))
        let certificate = try await sandbox.run("cat > cert.pem <<'EOF'\n\(origin.certificate)EOF")
        #expect(certificate.exitCode == 0)
        let fetched = try await sandbox.run(curl("--cacert cert.pem https://127.0.0.1:\(origin.port)/"))
        #expect(fetched.output.contains("status=200") && fetched.output.contains("connect=200"), "\(fetched.output)")
        #expect(fetched.output.contains("s_server"), "\(fetched.output)")
        // The same server by a name the policy does not list: the tunnel is never opened.
        let refused = try await sandbox.run(curl("--cacert cert.pem https://localhost:\(origin.port)/"))
        #expect(refused.output.contains("connect=403"), "\(refused.output)")
        let usage = try #require(await hands.egressUsage(session))
        let tunnelled = try #require(usage.entries.first { $0.key.host == "127.0.0.1" && $0.key.verdict == "allowed" }?.value)
        #expect(tunnelled.bytesSent > 0 && tunnelled.bytesReceived > 0, "\(usage)")
        await hands.shutdown()
        await origin.stop()
    }

    @Test("unrestricted reaches public hosts only: loopback, metadata, private and reserved addresses are refused in every spelling")
    func serverSideRequestForgery() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origin = try await LoopbackOrigin.start()
        let hands = egressPool(root)
        let sandbox = try await hands.checkout(SessionID.make(), environment: EnvironmentConfig(network: NetworkPolicy(access: .unrestricted)))
        let port = origin.port
        let targets = [
            "http://127.0.0.1:\(port)/", "http://localhost:\(port)/", "http://127.1:\(port)/", "http://2130706433:\(port)/",
            "http://0x7f000001:\(port)/", "http://0.0.0.0:\(port)/", "http://[::1]:\(port)/", "http://[::ffff:127.0.0.1]:\(port)/",
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/",
            "http://100.64.0.1/", "http://[fd00::1]/", "http://224.0.0.1/",
        ]
        for target in targets {
            let run = try await sandbox.run(curl("--max-time 10 '\(target)'"))
            #expect(!run.output.contains("status=200") && !run.output.contains("origin saw"), "\(target): \(run.output)")
            #expect(run.output.contains("status=403") || run.output.contains("status=400"), "\(target): \(run.output)")
        }
        let tunnelled = try await sandbox.run(curl("-p 'http://127.0.0.1:\(port)/'"))
        #expect(tunnelled.output.contains("connect=403"), "\(tunnelled.output)")
        #expect(origin.requests.isEmpty, "\(origin.requests)")
        await hands.shutdown()
        await origin.stop()
    }

    @Test("a sandbox without networking gets no proxy: no socket, no relay, no variables")
    func offline() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let hands = egressPool(root)
        let sandbox = try await hands.checkout(SessionID.make())
        #expect(sandbox.egress == nil)
        let run = try await sandbox.run("ls /run/drover 2>&1; env | grep -ci proxy; curl -sS --max-time 5 http://127.0.0.1:3128/ 2>&1 | head -1")
        #expect(run.output.contains("No such file") && run.output.contains("0\n") && run.output.contains("Failed to connect"), "\(run.output)")
        await hands.shutdown()
    }

    @Test("a station's directory left by a dead worker is swept; a live one's, and anything else, stay")
    func sweep() throws {
        let temporary = URL(fileURLWithPath: NSTemporaryDirectory())
        var dead: pid_t = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let left = temporary.appendingPathComponent("drover-egress-\(dead)-abc123")
        let live = temporary.appendingPathComponent("drover-egress-\(getppid())-def456")
        let other = temporary.appendingPathComponent("drover-egress-notapid")
        for directory in [left, live, other] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        defer { for directory in [live, other] { try? FileManager.default.removeItem(at: directory) } }
        EgressStation.sweepLeftDirectories()
        #expect(!FileManager.default.fileExists(atPath: left.path))
        #expect(FileManager.default.fileExists(atPath: live.path) && FileManager.default.fileExists(atPath: other.path))
    }

    @Test("a connection past the sandbox's cap is answered 429, and the slot frees when a connection ends")
    func connectionCap() async throws {
        let root = egressRoot()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let proxy = EgressProxy()
        let route = EgressRoute(policy: NetworkPolicy(access: .unrestricted), connectionLimit: 1)
        let listener = try await proxy.listen(at: root.appendingPathComponent("p.sock"), route: route)
        let first = try BlockingSocket(unixPath: listener.path.path)
        #expect(try await eventually { route.openConnections == 1 })
        let second = try BlockingSocket(unixPath: listener.path.path)
        let answer = try await offPool { try second.readAll() }
        #expect(answer.hasPrefix("HTTP/1.1 429") && answer.contains("already has 1 open"), "\(answer)")
        first.close()
        #expect(try await eventually { route.openConnections == 0 })
        let third = try BlockingSocket(unixPath: listener.path.path)
        let refused = try await offPool {
            try third.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return try third.readAll()
        }
        #expect(refused.hasPrefix("HTTP/1.1 400") && refused.contains("absolute http:// URLs"), "\(refused)")
        await listener.close()
    }
}

@Suite("Egress proxy input")
struct EgressProxyInputTests {
    @Test("hostile requests on the socket are answered 4xx and closed; the proxy keeps serving")
    func hostileInput() async throws {
        let root = egressRoot()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let origin = try await LoopbackOrigin.start()
        let proxy = EgressProxy()
        let route = EgressRoute(policy: NetworkPolicy(access: .limited, allowedHosts: ["127.0.0.1"]))
        let listener = try await proxy.listen(at: root.appendingPathComponent("p.sock"), route: route)
        var garbage = [UInt8](repeating: 0, count: 4096)
        for index in garbage.indices { garbage[index] = UInt8(truncatingIfNeeded: index &* 7919 &+ 13) }
        let hostile: [(String, String)] = [
            (String(decoding: garbage, as: UTF8.self), "HTTP/1.1 400"),
            ("CONNECT :0 HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
            ("CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
            ("CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
            ("CONNECT [::1]:80 HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
            ("GET http://127.0.0.1:0/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
            (
                "GET http://user@evil.example@127.0.0.1:\(origin.port)/@ HTTP/1.1\r\nHost: 127.0.0.1:\(origin.port)\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 200"
            ),
            ("GET http://\(String(repeating: "a", count: 300)).example/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
            ("GET http://127.0.0.1:\(origin.port)/ HTTP/1.1\r\nX-Big: \(String(repeating: "b", count: 200_000))\r\n\r\n", "HTTP/1.1 400"),
            ("GET ftp://127.0.0.1/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        ]
        for (request, expected) in hostile {
            let client = try BlockingSocket(unixPath: listener.path.path)
            let answer = try await offPool {
                try? client.send(request)
                return try client.readAll()
            }
            #expect(answer.hasPrefix(expected), "\(request.prefix(60).debugDescription): \(answer.prefix(300))")
        }
        // A client that sends half a request and goes away costs nothing after it is gone.
        let quitter = try BlockingSocket(unixPath: listener.path.path)
        try quitter.send("GET http://127.0.0.1:\(origin.port)/half HTTP/1.1\r\nHost: 127.0")
        quitter.close()
        #expect(try await eventually { route.openConnections == 0 })
        // Still serving, and keeping a connection for a second request.
        let client = try BlockingSocket(unixPath: listener.path.path)
        let port = origin.port
        let both = try await offPool {
            try client.send("GET http://127.0.0.1:\(port)/one HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n")
            try client.send("GET http://127.0.0.1:\(port)/two HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
            return try client.readAll()
        }
        #expect(both.contains("origin saw GET /one") && both.contains("origin saw GET /two"), "\(both)")
        #expect(origin.requests.map(\.uri).suffix(2) == ["/one", "/two"])
        #expect(!origin.requests.contains { $0.uri == "/half" })
        await listener.close()
        await origin.stop()
    }
}

extension EgressProxyInputTests {
    @Test("a closed tunnel gives its connection slot back: with a cap of one, tunnels can be opened one after another")
    func tunnelSlots() async throws {
        let root = scratchDirectory("egresstest")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let origin = try await LoopbackOrigin.start()
        let route = EgressRoute(policy: NetworkPolicy(access: .limited, allowedHosts: ["127.0.0.1"]), connectionLimit: 1)
        let listener = try await EgressProxy().listen(at: root.appendingPathComponent("p.sock"), route: route)
        for round in 1...3 {
            let client = try BlockingSocket(unixPath: listener.path.path)
            let port = origin.port
            let established = try await offPool { try client.exchange("CONNECT 127.0.0.1:\(port) HTTP/1.1\r\n\r\n", bodyless: true) }
            #expect(established.hasPrefix("HTTP/1.1 200"), "round \(round): \(established)")
            let answer = try await offPool { try client.exchange("GET /round-\(round) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") }
            #expect(answer.contains("origin saw GET /round-\(round)"), "round \(round): \(answer)")
            client.close()
            #expect(try await eventually { route.openConnections == 0 }, "round \(round): the tunnel's slot was not given back")
        }
        await listener.close()
        await origin.stop()
    }
}

@Suite("Egress gate")
struct EgressGateTests {
    struct FixedResolver: EgressResolver {
        let answers: [String: [String]]
        func resolve(host: String, port: Int) async throws -> [SocketAddress] {
            try (answers[host] ?? []).map { try SocketAddress(ipAddress: $0, port: port) }
        }
    }

    @Test("the name is resolved once and the connection goes to an address that passed: rebinding to a private address is refused")
    func rebinding() async throws {
        let gate = EgressGate(
            resolver: FixedResolver(answers: [
                "rebind.example": ["10.0.0.5"], "mixed.example": ["192.168.1.1", "93.184.216.34"], "db.internal": ["10.1.2.3"],
                "meta.example": ["169.254.169.254"], "mapped.example": ["::ffff:127.0.0.1"],
            ]))
        let open = NetworkPolicy(access: .unrestricted)
        #expect(
            await gate.decide(host: "rebind.example", port: 80, policy: open, mcpHosts: [])
                == .failure(.nonPublicAddress(host: "rebind.example", address: "10.0.0.5", kind: .private)))
        #expect(
            await gate.decide(host: "meta.example", port: 80, policy: open, mcpHosts: [])
                == .failure(.nonPublicAddress(host: "meta.example", address: "169.254.169.254", kind: .linkLocal)))
        guard case .failure(.nonPublicAddress(_, _, .loopback)) = await gate.decide(host: "mapped.example", port: 80, policy: open, mcpHosts: [])
        else {
            Issue.record("an IPv4-mapped loopback address passed")
            return
        }
        guard case .success(let address) = await gate.decide(host: "mixed.example", port: 443, policy: open, mcpHosts: []) else {
            Issue.record("the public address of a mixed answer was not used")
            return
        }
        #expect(address.ipAddress == "93.184.216.34" && address.port == 443)
        // Named exactly, a private host is the operator's choice; through a wildcard it is not.
        let exact = NetworkPolicy(access: .limited, allowedHosts: ["db.internal"])
        #expect(try await gate.decide(host: "DB.internal.", port: 5432, policy: exact, mcpHosts: []).get().ipAddress == "10.1.2.3")
        let wildcard = NetworkPolicy(access: .limited, allowedHosts: ["*.internal"])
        #expect(
            await gate.decide(host: "db.internal", port: 5432, policy: wildcard, mcpHosts: [])
                == .failure(.nonPublicAddress(host: "db.internal", address: "10.1.2.3", kind: .private)))
        #expect(await gate.decide(host: "other.example", port: 80, policy: exact, mcpHosts: []) == .failure(.hostNotAllowed(host: "other.example")))
    }

    @Test("Drover's own endpoints are refused even where a policy names their host exactly")
    func protectedEndpoints() async throws {
        let gate = EgressGate(
            resolver: FixedResolver(answers: [:]),
            protected: [try SocketAddress(ipAddress: "127.0.0.1", port: 6379), try SocketAddress(ipAddress: "0.0.0.0", port: 4000)])
        let loopback = NetworkPolicy(access: .limited, allowedHosts: ["127.0.0.1"])
        #expect(
            await gate.decide(host: "127.0.0.1", port: 6379, policy: loopback, mcpHosts: [])
                == .failure(.protectedEndpoint(host: "127.0.0.1", address: "127.0.0.1:6379")))
        #expect(
            await gate.decide(host: "127.0.0.1", port: 4000, policy: loopback, mcpHosts: [])
                == .failure(.protectedEndpoint(host: "127.0.0.1", address: "127.0.0.1:4000")))
        #expect(try await gate.decide(host: "127.0.0.1", port: 8080, policy: loopback, mcpHosts: []).get().port == 8080)
    }

    @Test("every address of the host's own interfaces is refused under unrestricted, public-looking ones included")
    func thisHost() async throws {
        let own = EgressGate.hostAddresses().filter { $0.count == 4 }.map { $0.map(String.init).joined(separator: ".") }
        #expect(!own.isEmpty)
        let gate = EgressGate(resolver: FixedResolver(answers: Dictionary(uniqueKeysWithValues: own.map { ("own-\($0).example", [$0]) })))
        for address in own {
            let decision = await gate.decide(host: "own-\(address).example", port: 8787, policy: NetworkPolicy(access: .unrestricted), mcpHosts: [])
            guard case .failure(.nonPublicAddress(_, address, _)) = decision else {
                Issue.record("\(address), an address of this host, was not refused: \(decision)")
                continue
            }
        }
    }

    @Test("package registries and the agent's MCP servers open only under their flags")
    func flags() async throws {
        let gate = EgressGate(resolver: FixedResolver(answers: ["pypi.org": ["151.101.0.223"], "mcp.example.com": ["203.0.114.1"]]))
        let plain = NetworkPolicy(access: .limited)
        #expect(await gate.decide(host: "pypi.org", port: 443, policy: plain, mcpHosts: []) == .failure(.hostNotAllowed(host: "pypi.org")))
        let registries = NetworkPolicy(access: .limited, allowPackageManagers: true)
        #expect(try await gate.decide(host: "pypi.org", port: 443, policy: registries, mcpHosts: []).get().port == 443)
        #expect(
            await gate.decide(host: "mcp.example.com", port: 443, policy: registries, mcpHosts: ["mcp.example.com"])
                == .failure(.hostNotAllowed(host: "mcp.example.com")))
        let servers = NetworkPolicy(access: .limited, allowMCPServers: true)
        #expect(try await gate.decide(host: "mcp.example.com", port: 443, policy: servers, mcpHosts: ["mcp.example.com"]).get().port == 443)
    }

    @Test("addresses are classified by what they lead to, IPv6 wrappers of IPv4 included")
    func classification() {
        let cases: [(String, IPAddressClass)] = [
            ("8.8.8.8", .public), ("93.184.216.34", .public), ("127.0.0.1", .loopback), ("127.255.0.9", .loopback),
            ("10.2.3.4", .private), ("172.31.255.255", .private), ("172.32.0.1", .public), ("192.168.10.1", .private),
            ("100.64.0.1", .private), ("169.254.169.254", .linkLocal), ("0.0.0.0", .unspecified), ("224.0.0.251", .multicast),
            ("255.255.255.255", .reserved), ("::1", .loopback), ("::", .unspecified), ("::ffff:10.0.0.1", .private),
            ("64:ff9b::a9fe:a9fe", .linkLocal), ("2002:7f00:1::", .loopback), ("fd12::1", .private), ("fe80::1", .linkLocal),
            ("ff02::1", .multicast), ("2001:db8::1", .public), ("203.0.113.80", .public), ("192.0.0.8", .reserved),
            ("2606:4700::1111", .public),
        ]
        for (text, expected) in cases {
            #expect(IPAddressClass(address: text) == expected, "\(text)")
        }
        #expect(IPAddressClass(address: "example.com") == nil)
    }

    @Test("allowed_hosts entries: names, wildcards and IPv4 literals; URLs, ports and bare wildcards are refused with the fix")
    func hostPatterns() throws {
        let policy = try NetworkPolicy.parse(
            .object([
                "type": "limited", "allowed_hosts": .array(["API.Example.com.", "*.github.com", "203.0.113.7"]),
                "allow_package_managers": .bool(true),
            ]))
        #expect(policy.allowedHosts.map(\.text) == ["*.github.com", "203.0.113.7", "api.example.com"])
        func admits(_ host: String) -> Bool { policy.match(host: host) != nil }
        #expect(admits("api.example.com") && admits("raw.github.com") && admits("a.b.github.com"))
        #expect(!admits("github.com") && !admits("evilgithub.com") && !admits("example.com"))
        #expect(admits("files.pythonhosted.org"))
        for bad in ["https://api.example.com", "api.example.com:443", "api.example.com/path", "*", "*.com", "a.*.com", "", "exa mple.com", "[::1]"] {
            #expect {
                try NetworkPolicy.parse(.object(["type": "limited", "allowed_hosts": .array([.string(bad)])]))
            } throws: { error in
                let text = "\(error)"
                return text.contains("config.networking.allowed_hosts[0]") && text.contains("Fix:")
            }
        }
        #expect(try NetworkPolicy.parse(nil) == .offline)
        #expect(try NetworkPolicy.parse(.object(["type": "unrestricted"])).access == .unrestricted)
        #expect(EnvironmentConfig(network: .offline).key == EnvironmentConfig.none.key)
        #expect(EnvironmentConfig(network: policy).key != EnvironmentConfig.none.key)
        #expect(EnvironmentConfig(network: policy).packagesKey == EnvironmentConfig.none.packagesKey)
    }
}

/// An origin that answers `Expect: 100-continue` as servers do: `100 Continue` once the head is
/// in, the final answer once the body is.
private final class ContinueOrigin: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var received = ""
    private var continued = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readString(length: buffer.readableBytes) ?? ""
        guard let end = received.range(of: "\r\n\r\n") else { return }
        if !continued {
            continued = true
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
        }
        if received[end.upperBound...].utf8.count >= 5 {
            let answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: answer)), promise: nil)
        }
    }
}

@Suite("Egress proxy interim answers")
struct EgressProxyContinueTests {
    @Test("100 Continue reaches a client that sent Expect: 100-continue, and the final answer follows it")
    func expectContinue() async throws {
        let root = egressRoot()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let origin = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(ContinueOrigin()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = origin.localAddress?.port ?? 0
        let listener = try await EgressProxy().listen(
            at: root.appendingPathComponent("c.sock"), route: EgressRoute(policy: NetworkPolicy(access: .limited, allowedHosts: ["127.0.0.1"])))
        let path = listener.path.path
        let (interim, final) = try await offPool {
            let client = try BlockingSocket(unixPath: path)
            defer { client.close() }
            let interim = try client.exchange(
                "POST http://127.0.0.1:\(port)/upload HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                bodyless: true)
            try client.send("hello")
            return (interim, try client.readAll())
        }
        #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
        #expect(final.hasPrefix("HTTP/1.1 200 OK") && final.hasSuffix("done"), "\(final)")
        await listener.close()
        try await origin.close()
    }
}
