import ArgumentParser
import DroverCore
import DroverEgress
import DroverRuntime
import DroverTesting
import DroverTools
import Foundation
import NIOSSL

struct EgressBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "egress",
        abstract: "Request latency through the egress proxy against direct, side by side.",
        discussion: """
            A real HTTP server on 127.0.0.1 and the worker's egress proxy on a unix socket, with the
            policy `limited` and allowed_hosts [127.0.0.1]. In each of --rounds rounds, the modes
            take turns, each sending --requests sequential GETs on one kept-alive connection:
              direct        to the server itself;
              proxy_http    absolute http:// requests to the proxy, which decides each one and
                            opens a connection to the server for it (as it always does: the next
                            request may go elsewhere);
              proxy_tunnel  one CONNECT, then the requests through the tunnel, as an HTTPS client
                            on a kept-alive connection sends them. TLS is left out: it costs the
                            same direct and through a tunnel, which only copies its bytes.
            And over TLS, to an HTTPS server with a certificate of its own, each request
            carrying `Authorization: Bearer <placeholder>`:
              direct_https             to the server itself (the placeholder goes as it is);
              proxy_https_substituted  through a CONNECT to a host a credential names: the proxy
                                       ends the client's TLS under its authority, puts the secret
                                       in place of the placeholder, and sends the request on its
                                       own kept-alive TLS connection to the server.
            The first request of each connection (the TLS handshakes) is left out of the
            latencies of both, as the target is a request on a kept-alive connection.
            Inside a sandbox the relay (drover-egress-forward) adds a loopback TCP hop in front of
            the socket; it is not in these figures.
            """
    )

    @Option(help: "Sequential requests per mode per round.") var requests = 500
    @Option(help: "Rounds; the modes take turns in each.") var rounds = 5

    func validate() throws {
        guard (1...1_000_000).contains(requests) else { throw ValidationError("--requests must be 1 to 1000000") }
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be 1 to 100") }
    }

    func run() async throws {
        let origin = try await LoopbackOrigin.start()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-egress-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let originAuthority = try EgressAuthority.ephemeral()
        let tlsOrigin = try await LoopbackOrigin.start(tls: try originAuthority.serverContext(for: "127.0.0.1"))
        let originRoot = try NIOSSLCertificate(bytes: Array(originAuthority.certificatePEM.utf8), format: .pem)
        let authority = try EgressAuthority.ephemeral(extraRoots: [originRoot])
        let authorityRoot = try NIOSSLCertificate(bytes: Array(authority.certificatePEM.utf8), format: .pem)
        let policy = NetworkPolicy(access: .limited, allowedHosts: ["127.0.0.1"])
        // Two sandboxes' sockets on one proxy: one with a credential for 127.0.0.1 (its CONNECTs
        // are read), one without (its CONNECTs are tunnels).
        let route = EgressRoute(policy: policy)
        let credentialRoute = EgressRoute(policy: policy)
        let secretValue = "bench-secret-\(Identifier.make(prefix: "s").suffix(16))"
        credentialRoute.use(secrets: [
            EgressSecret(
                credentialID: "vcrd_BENCH", vaultID: "vlt_BENCH", variable: "TOKEN", value: secretValue, hosts: ["127.0.0.1"], inHeaders: true,
                inBody: false)
        ])
        let placeholder = EgressSecret.placeholder(credential: "vcrd_BENCH")
        let proxy = EgressProxy(authority: authority)
        let listener = try await proxy.listen(at: directory.appendingPathComponent("bench.sock"), route: route)
        let credentialListener = try await proxy.listen(at: directory.appendingPathComponent("credential.sock"), route: credentialRoute)
        let port = origin.port
        let target = "127.0.0.1:\(port)"
        let count = requests
        var samples: [String: [Double]] = ["direct": [], "proxy_http": [], "proxy_tunnel": [], "direct_https": [], "proxy_https_substituted": []]
        var seconds: [String: Double] = [:]
        for _ in 0..<rounds {
            for mode in ["direct_https", "proxy_https_substituted"] {
                let client = try await BenchHTTPSClient.connect(
                    port: tlsOrigin.port, root: mode == "direct_https" ? originRoot : authorityRoot,
                    proxySocket: mode == "direct_https" ? nil : credentialListener.path.path)
                let headers = [("authorization", "Bearer \(placeholder)")]
                guard try await client.get("/warm", headers: headers) == .ok else { throw BenchFailure("\(mode) failed its first request") }
                let started = ContinuousClock.now
                var timings: [Double] = []
                for _ in 0..<count {
                    let start = ContinuousClock.now
                    let status = try await client.get("/bench", headers: headers)
                    timings.append((ContinuousClock.now - start).seconds * 1000)
                    guard status == .ok else { throw BenchFailure("\(mode) answered \(status)") }
                }
                seconds[mode, default: 0] += (ContinuousClock.now - started).seconds
                samples[mode, default: []] += timings
                await client.close()
                let sent = tlsOrigin.received.last?.head.headers.first(name: "authorization")
                guard sent == "Bearer \(mode == "direct_https" ? placeholder : secretValue)" else {
                    throw BenchFailure("\(mode): the server did not get the expected authorization")
                }
            }
            for mode in ["direct", "proxy_http", "proxy_tunnel"] {
                let started = ContinuousClock.now
                let timings = try await onThread {
                    let connection: BlockingSocket
                    var path = "/bench"
                    switch mode {
                    case "direct":
                        connection = try BlockingSocket(tcpPort: port)
                    case "proxy_http":
                        connection = try BlockingSocket(unixPath: listener.path.path)
                        path = "http://\(target)/bench"
                    default:
                        connection = try BlockingSocket(unixPath: listener.path.path)
                        let established = try connection.exchange("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n", bodyless: true)
                        guard established.hasPrefix("HTTP/1.1 200") else { throw BenchFailure("CONNECT answered \(established.prefix(80))") }
                    }
                    defer { connection.close() }
                    var timings: [Double] = []
                    for _ in 0..<count {
                        let start = ContinuousClock.now
                        let answer = try connection.exchange("GET \(path) HTTP/1.1\r\nHost: \(target)\r\n\r\n")
                        timings.append((ContinuousClock.now - start).seconds * 1000)
                        guard answer.hasPrefix("HTTP/1.1 200") else { throw BenchFailure("\(mode) answered \(answer.prefix(200))") }
                    }
                    return timings
                }
                seconds[mode, default: 0] += (ContinuousClock.now - started).seconds
                samples[mode, default: []] += timings
            }
        }
        await listener.close()
        await credentialListener.close()
        await origin.stop()
        await tlsOrigin.stop()
        let sorted = samples.mapValues { $0.sorted() }
        let direct50 = percentile(sorted["direct"]!, 50)
        var report: [String: JSONValue] = [
            "benchmark": "egress", "requests_per_mode_per_round": .number(Double(requests)), "rounds": .number(Double(rounds)),
        ]
        for (mode, values) in sorted {
            report["\(mode)_ms"] = latencySummary(values)
            report["\(mode)_requests_per_second"] = .number(round3(Double(values.count) / max(seconds[mode] ?? 1, 1e-9)))
        }
        report["overhead_p50_ms"] = .object([
            "http": .number(round3(percentile(sorted["proxy_http"]!, 50) - direct50)),
            "tunnel": .number(round3(percentile(sorted["proxy_tunnel"]!, 50) - direct50)),
            "https_substituted": .number(round3(percentile(sorted["proxy_https_substituted"]!, 50) - percentile(sorted["direct_https"]!, 50))),
        ])
        print(try encodeJSON(JSONValue.object(report)))
    }

    /// Runs blocking socket work off the cooperative pool.
    private func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
