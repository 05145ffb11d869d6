import DroverCore
import DroverEgress
import DroverTesting
import DroverTools
import Foundation
import NIOSSL
import Testing

@testable import DroverHands

/// A secret that must reach the origins the credential names and nothing else.
private let canary = "canary-\(Identifier.make(prefix: "s").suffix(20))-secret"

/// Two origins on 127.0.0.1, HTTPS and plain HTTP, whose certificate comes from an authority of
/// their own (not Drover's): the proxy is told to trust it, the sandbox never is.
private struct Origins {
    let tls: LoopbackOrigin
    let plain: LoopbackOrigin
    let originAuthority: EgressAuthority

    static func start() async throws -> Origins {
        let originAuthority = try EgressAuthority.ephemeral()
        return Origins(
            tls: try await LoopbackOrigin.start(tls: try originAuthority.serverContext(for: "127.0.0.1")),
            plain: try await LoopbackOrigin.start(), originAuthority: originAuthority)
    }

    /// Drover's authority, trusting the origins' for its own connections out.
    func egressAuthority() throws -> EgressAuthority {
        try EgressAuthority.ephemeral(extraRoots: [try NIOSSLCertificate(bytes: Array(originAuthority.certificatePEM.utf8), format: .pem)])
    }

    func stop() async {
        await tls.stop()
        await plain.stop()
    }
}

private func secret(hosts: [HostPattern]?, header: Bool = true, body: Bool = false) -> EgressSecret {
    EgressSecret(
        credentialID: "vcrd_01CANARY", vaultID: "vlt_01CANARY", variable: "API_TOKEN", value: canary, hosts: hosts, inHeaders: header, inBody: body)
}

/// A sandbox of `session` under `hosts`, with the canary credential on its route and its
/// placeholder in the sandbox's API_TOKEN.
private func credentialSandbox(_ hands: SandboxPool, _ session: SessionID, hosts: [HostPattern], body: Bool = false) async throws -> Sandbox {
    let sandbox = try await hands.checkout(session, environment: limited(hosts))
    sandbox.egress?.route.use(secrets: [secret(hosts: ["127.0.0.1"], body: body)])
    await sandbox.use(credentialVariables: ["API_TOKEN": EgressSecret.placeholder(credential: "vcrd_01CANARY")])
    return sandbox
}

@Suite("Egress credentials", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct EgressCredentialTests {
    @Test("a placeholder becomes the secret only on the credential's hosts, in headers, Basic auth and (when allowed) bodies, over HTTPS and HTTP")
    func substitution() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origins = try await Origins.start()
        let hands = egressPool(root, authority: try origins.egressAuthority())
        let session = SessionID.make()
        let sandbox = try await credentialSandbox(hands, session, hosts: ["127.0.0.1", "localhost"], body: true)

        // HTTPS to the credential's host: read by the proxy, trusted through the sandbox's own
        // trust store (no --cacert), and the origin gets the secret.
        let bearer = try await sandbox.run(curl("-H \"Authorization: Bearer $API_TOKEN\" https://127.0.0.1:\(origins.tls.port)/bearer"))
        #expect(bearer.output.contains("status=200"), "\(bearer.output)")
        #expect(bearer.output.contains("authorization sha256=\(LoopbackOrigin.digest("Bearer \(canary)"))"), "\(bearer.output)")
        #expect(origins.tls.received.last?.head.headers["authorization"] == ["Bearer \(canary)"])

        // Basic auth (git, pip): the password inside the base64 is replaced.
        let basic = try await sandbox.run(curl("-u \"x-access-token:$API_TOKEN\" https://127.0.0.1:\(origins.tls.port)/basic"))
        let expectedBasic = "Basic " + Data("x-access-token:\(canary)".utf8).base64EncodedString()
        #expect(basic.output.contains("authorization sha256=\(LoopbackOrigin.digest(expectedBasic))"), "\(basic.output)")

        // A body: replaced, and its length counted again.
        let posted = try await sandbox.run(curl("-d \"token=$API_TOKEN&x=1\" https://127.0.0.1:\(origins.tls.port)/form"))
        let form = "token=\(canary)&x=1"
        #expect(posted.output.contains("body sha256=\(LoopbackOrigin.digest(form)) length=\(form.utf8.count)"), "\(posted.output)")

        // Plain HTTP to the same host: replaced too.
        let plain = try await sandbox.run(curl("-H \"X-Key: $API_TOKEN\" http://127.0.0.1:\(origins.plain.port)/plain"))
        #expect(plain.output.contains("status=200"), "\(plain.output)")
        #expect(origins.plain.received.last?.head.headers["x-key"] == [canary])

        // Another host the policy allows: the placeholder goes as it is, over an untouched tunnel.
        let elsewhere = try await sandbox.run(
            curl("-k -H \"Authorization: Bearer $API_TOKEN\" https://localhost:\(origins.tls.port)/elsewhere"))
        #expect(elsewhere.output.contains("status=200") && elsewhere.output.contains("connect=200"), "\(elsewhere.output)")
        let placeholder = EgressSecret.placeholder(credential: "vcrd_01CANARY")
        #expect(origins.tls.received.last?.head.headers["authorization"] == ["Bearer \(placeholder)"])
        let plainElsewhere = try await sandbox.run(curl("-H \"X-Key: $API_TOKEN\" http://localhost:\(origins.plain.port)/plain-elsewhere"))
        #expect(plainElsewhere.output.contains("status=200"), "\(plainElsewhere.output)")
        #expect(origins.plain.received.last?.head.headers["x-key"] == [placeholder])

        // Requests inside one intercepted connection share the proxy's connection out.
        let twice = try await sandbox.run(
            "curl -sS --noproxy '' -H \"Authorization: Bearer $API_TOKEN\" https://127.0.0.1:\(origins.tls.port)/one https://127.0.0.1:\(origins.tls.port)/two"
        )
        #expect(
            twice.output.components(separatedBy: "authorization sha256=\(LoopbackOrigin.digest("Bearer \(canary)"))").count == 3, "\(twice.output)")

        let usage = try #require(await hands.egressUsage(session))
        let counted = try #require(
            usage.entries.first { $0.key.host == "127.0.0.1" && $0.key.port == origins.tls.port && $0.key.verdict == "allowed" })
        #expect(counted.value.requests == 5 && counted.value.bytesSent > 0 && counted.value.bytesReceived > 0, "\(usage)")
        await hands.shutdown()
        await origins.stop()
    }

    @Test("a session's repository opens its git requests only, on a host the policy does not list, with the token added and no other path")
    func repositoryPaths() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origins = try await Origins.start()
        let hands = egressPool(root, gate: EgressGate(internalHosts: ["127.0.0.1"]), authority: try origins.egressAuthority())
        let session = SessionID.make()
        let sandbox = try await hands.checkout(session, environment: limited(["localhost"]))
        let base = "https://127.0.0.1:\(origins.tls.port)"
        let repository = try #require(EgressRepository(resourceID: "sesrsc_01REPO", url: "\(base)/acme/site.git", token: canary))
        sandbox.egress?.route.use(repositories: [repository])

        let refs = try await sandbox.run(curl("'\(base)/acme/site.git/info/refs?service=git-upload-pack'"))
        #expect(refs.output.contains("status=200"), "\(refs.output)")
        let expected = "Basic " + Data("x-access-token:\(canary)".utf8).base64EncodedString()
        #expect(origins.tls.received.last?.head.headers["authorization"] == [expected])
        // The token goes in place of whatever the sandbox sent.
        let forged = try await sandbox.run(curl("-u me:guess -X POST -d x '\(base)/acme/site/git-receive-pack'"))
        #expect(forged.output.contains("status=200"), "\(forged.output)")
        #expect(origins.tls.received.last?.head.headers["authorization"] == [expected])
        // Anything else on that host is not the repository's.
        for other in ["/acme/other.git/info/refs", "/acme/site.git/../other.git/info/refs", "/", "/acme/site.git/HEAD"] {
            let refused = try await sandbox.run(curl("--path-as-is '\(base)\(other)'"))
            #expect(refused.output.contains("status=403") && refused.output.contains("repositories' git requests"), "\(other): \(refused.output)")
        }
        #expect(origins.tls.received.count == 2)
        await hands.shutdown()
        await origins.stop()
    }

    @Test("a repository on a private address the operator did not list is refused, like any other")
    func repositoryOnPrivateHost() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origins = try await Origins.start()
        let hands = egressPool(root, authority: try origins.egressAuthority())
        let sandbox = try await hands.checkout(SessionID.make(), environment: limited(["localhost"]))
        let base = "https://127.0.0.1:\(origins.tls.port)"
        sandbox.egress?.route.use(repositories: [try #require(EgressRepository(resourceID: "sesrsc_01REPO", url: "\(base)/acme/site", token: canary))]
        )
        let session = try #require(sandbox.egress?.route.session)
        let refused = try await sandbox.run(curl("'\(base)/acme/site/info/refs?service=git-upload-pack'"))
        #expect(refused.output.contains("connect=403"), "\(refused.output)")
        #expect(origins.tls.received.isEmpty)
        let usage = try #require(await hands.egressUsage(session))
        #expect(usage.entries.keys.map(\.verdict) == ["refused: non-public address"], "\(usage)")
        await hands.shutdown()
        await origins.stop()
    }

    @Test("the canary: a hostile sandbox finds the secret nowhere it can look, and cannot make the proxy show it")
    func canaryNeverInSandbox() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origins = try await Origins.start()
        let hands = egressPool(root, authority: try origins.egressAuthority())
        let session = SessionID.make()
        let sandbox = try await credentialSandbox(hands, session, hosts: ["127.0.0.1", "localhost"], body: true)

        // Everything the sandbox can read: its environment, every process's environment and
        // command line, every file, and what the proxy answers to crafted requests (its own
        // error pages, a request for a non-allowed host carrying the placeholder, a TRACE).
        let hunt = """
            { env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' '\\n'
              grep -rIa -h "\(canary)" /run /tmp /workspace /etc /home /root /var /opt 2>/dev/null
              printf 'GET http://127.0.0.1:\(origins.plain.port)/ HTTP/1.1\\r\\nHost: localhost\\r\\nX: %s\\r\\n\\r\\n' "$API_TOKEN" | curl -sS --max-time 5 telnet://127.0.0.1:3128 2>&1
              curl -sS --noproxy '' -X TRACE -H "X-Key: $API_TOKEN" http://localhost:\(origins.plain.port)/trace
              curl -sS --noproxy '' -H "X-Key: $API_TOKEN" http://10.1.2.3/ssrf
              curl -sS --noproxy '' -p -H "X-Key: $API_TOKEN" http://127.0.0.1:\(origins.plain.port)/connect-plain
            } > /tmp/hunt.txt 2>&1
            grep -c "\(canary)" /tmp/hunt.txt; grep -c "$API_TOKEN" /tmp/hunt.txt
            """
        let found = try await sandbox.run(hunt)
        let lines = found.output.split(separator: "\n")
        #expect(lines.first == "0", "the secret was found in the sandbox: \(found.output)")
        // The control: the same hunt finds the placeholder (in the environment, /proc, the
        // proxy's refusals), so it did look where the secret would have been.
        #expect((Int(lines.last ?? "") ?? 0) >= 3, "the hunt found not even the placeholder: \(found.output)")
        // The sandbox sees the placeholder, and the authority's certificate, never its key.
        let seen = try await sandbox.run(
            "echo \"$API_TOKEN\"; grep -c 'BEGIN CERTIFICATE' \"$SSL_CERT_FILE\"; grep -rl 'PRIVATE KEY' /run /etc/ssl 2>/dev/null | wc -l")
        #expect(seen.output.hasPrefix(EgressSecret.placeholder(credential: "vcrd_01CANARY")), "\(seen.output)")
        #expect(seen.output.hasSuffix("0\n"), "\(seen.output)")
        await hands.shutdown()
        await origins.stop()
    }

    @Test("an intercepted destination whose certificate the proxy cannot verify gets a 502 that says so, and no request")
    func untrustedDestination() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let origins = try await Origins.start()
        // Drover's authority without the origins' authority among its roots.
        let hands = egressPool(root, authority: try EgressAuthority.ephemeral())
        let session = SessionID.make()
        let sandbox = try await credentialSandbox(hands, session, hosts: ["127.0.0.1"])
        let run = try await sandbox.run(curl("-H \"Authorization: Bearer $API_TOKEN\" https://127.0.0.1:\(origins.tls.port)/untrusted"))
        #expect(run.output.contains("status=502") && run.output.contains("could not talk to 127.0.0.1"), "\(run.output)")
        #expect(origins.tls.received.isEmpty)
        let usage = try #require(await hands.egressUsage(session))
        #expect(usage.entries.contains { $0.key.verdict.hasPrefix("failed: TLS with the destination") }, "\(usage)")
        await hands.shutdown()
        await origins.stop()
    }

    @Test("a credential variable reaches a running shell, keeps its saved state, and cannot displace the sandbox's own variables")
    func variables() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        let hands = egressPool(root, authority: try EgressAuthority.ephemeral())
        let sandbox = try await hands.checkout(SessionID.make(), environment: limited(["127.0.0.1"]))
        _ = try await sandbox.runInShell("cd /tmp && export KEPT=yes")
        await sandbox.use(credentialVariables: ["API_TOKEN": "drover_placeholder_a", "HTTPS_PROXY": "http://evil:1", "PATH": "/nowhere"])
        let run = try await sandbox.runInShell("echo \"$API_TOKEN $KEPT $(pwd) $HTTPS_PROXY\"; command -v curl")
        #expect(run.output.hasPrefix("drover_placeholder_a yes /tmp http://127.0.0.1:3128\n/usr/bin/curl"), "\(run.output)")
        await hands.shutdown()
    }
}

@Suite("Egress for MCP hosts", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct EgressMCPHostTests {
    @Test("allow_mcp_servers opens the hosts of the agent's MCP servers to its sandbox, as wildcards are opened: never a private address")
    func mcpHosts() async throws {
        let root = egressRoot()
        defer { Task { await removeHandsRoot(root) } }
        var settings = SandboxPoolSettings()
        settings.warmPerConfiguration = 0
        let toolset = AgentToolset(root: root, limits: SandboxLimits(), pool: settings)
        let session = SessionID.make()
        let environment = EnvironmentConfig(network: NetworkPolicy(access: .limited, allowMCPServers: true))
        func call(_ mcpHosts: [String]) async throws -> String {
            let context = ToolContext(
                session: session, fence: SessionFence(session: session, epoch: 1), deadline: .now + .seconds(120), environment: environment,
                mcpHosts: mcpHosts)
            let result = try await toolset.execute(name: "bash", input: .object(["command": .string(curl("http://localhost:9/"))]), context: context)
            return result.content.map { "\($0)" }.joined()
        }
        // Not one of the agent's servers: not allowed at all.
        let closed = try await call([])
        #expect(closed.contains("status=403") && closed.contains("refused localhost"), "\(closed)")
        // One of them: allowed by name, then refused for its loopback address.
        let opened = try await call(["localhost"])
        #expect(opened.contains("status=403") && opened.contains("loopback"), "\(opened)")
        await toolset.pool.shutdown()
    }
}
