import DroverCore
import DroverEgress
import DroverTools
import Foundation

/// A sandbox's way out: its socket on the worker's egress proxy, and the relay that reaches it
/// from the sandbox's loopback. Only sandboxes whose environment allows some network get one.
public struct SandboxEgress: Sendable {
    public let listener: EgressListener
    /// The relay binary, in the station's directory.
    let forwarder: URL
    /// The system's trust store plus the egress authority's certificate, when the proxy has an
    /// authority: what TLS clients in the sandbox trust.
    let trustBundle: URL?

    public var route: EgressRoute { listener.route }

    /// The port the relay listens on inside the sandbox, and where the socket and relay appear.
    static let port = 3128
    static let socketInSandbox = "/run/drover/egress.sock"
    static let forwarderInSandbox = "/run/drover/egress-forward"
    static let trustInSandbox = "/run/drover/ca-certificates.crt"
    /// Debian's bundle, which clients read when no variable names another: covered by the
    /// bundle that adds the authority, so that clients that read no variable trust it too.
    static let systemBundle = "/etc/ssl/certs/ca-certificates.crt"

    /// bubblewrap's arguments: the socket and the relay, bound read-only, and the variables that
    /// point HTTP clients (curl, pip, requests, git, node) at the relay.
    var bindArguments: [String] {
        var arguments = ["--ro-bind", listener.path.path, Self.socketInSandbox, "--ro-bind", forwarder.path, Self.forwarderInSandbox]
        if let trustBundle {
            arguments += ["--ro-bind", trustBundle.path, Self.trustInSandbox]
            if FileManager.default.fileExists(atPath: Self.systemBundle) { arguments += ["--ro-bind", trustBundle.path, Self.systemBundle] }
        }
        return arguments
    }

    /// The proxy variables. `NO_PROXY` keeps the sandbox's own loopback for servers the agent
    /// runs in it; without `keepsLoopback` (a pip install, which runs none) everything goes to
    /// the proxy, since an operator's index may be on the host's loopback.
    func environment(keepsLoopback: Bool = true) -> [(String, String)] {
        let proxy = "http://127.0.0.1:\(Self.port)"
        let direct = "localhost,127.0.0.1,::1"
        let trust =
            trustBundle == nil
            ? []
            : ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS", "PIP_CERT"].map {
                ($0, Self.trustInSandbox)
            }
        return [("HTTP_PROXY", proxy), ("HTTPS_PROXY", proxy), ("http_proxy", proxy), ("https_proxy", proxy)]
            + (keepsLoopback ? [("NO_PROXY", direct), ("no_proxy", direct)] : []) + trust
    }

    /// The relay starts first and becomes the sandbox's command once its port is open.
    var commandPrefix: [String] {
        [Self.forwarderInSandbox, String(Self.port), Self.socketInSandbox, "--"]
    }
}

/// The pool's side of the egress proxy: one proxy per pool, with a private directory for the
/// sandboxes' sockets and a copy of the relay.
///
/// The directory is made by `mkdtemp` (a fresh name, 0700, so nothing planted beforehand is
/// used), then opened to traversal only (0711): bubblewrap, which runs as nobody when Drover
/// runs as root, must reach one socket by its exact name, and no sandbox is shown the directory.
/// It sits in the system's temporary directory because a unix socket's path is capped at 107
/// bytes, and a hands root can be deeper than that.
public actor EgressStation {
    public nonisolated let proxy: EgressProxy
    private var directory: URL?
    private var forwarder: URL?
    private var trustBundle: URL?

    public init(gate: EgressGate, authority: EgressAuthority? = nil) {
        proxy = EgressProxy(gate: gate, authority: authority)
    }

    public struct Unavailable: Error, CustomStringConvertible {
        public let reason: String
        public var description: String {
            "the sandbox's network could not be set up: \(reason). Fix: build the drover-egress-forward product beside drover (swift build), or set DROVER_EGRESS_FORWARDER to its path"
        }
    }

    /// A socket for one sandbox under `policy`.
    public func attach(policy: NetworkPolicy) async throws -> SandboxEgress {
        let (directory, forwarder) = try prepare()
        let socket = directory.appendingPathComponent(Identifier.make(prefix: "e").suffix(16) + ".sock")
        let listener = try await proxy.listen(at: socket, route: EgressRoute(policy: policy))
        return SandboxEgress(listener: listener, forwarder: forwarder, trustBundle: trustBundle)
    }

    /// Removes the directory; listeners are closed by their sandboxes.
    public func shutdown() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
        directory = nil
        forwarder = nil
        trustBundle = nil
    }

    private func prepare() throws -> (URL, URL) {
        if let directory, let forwarder { return (directory, forwarder) }
        guard let source = Self.locateForwarder() else {
            throw Unavailable(reason: "drover-egress-forward was not found beside \(Self.executableDirectory?.path ?? "drover")")
        }
        Self.sweepLeftDirectories()
        // The pid names the process that owns it, so that a later station can tell a dead one's.
        var template = Array((NSTemporaryDirectory() + "/drover-egress-\(getpid())-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Unavailable(reason: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        let directory = URL(fileURLWithPath: String(cString: made)).standardizedFileURL
        chmod(directory.path, 0o711)
        let forwarder = directory.appendingPathComponent("egress-forward")
        do {
            try FileManager.default.copyItem(at: source, to: forwarder)
            chmod(forwarder.path, 0o755)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw Unavailable(reason: "copying \(source.path) failed: \(error)")
        }
        if let authority = proxy.authority {
            let bundle = directory.appendingPathComponent("ca-certificates.crt")
            let system = (try? String(contentsOfFile: SandboxEgress.systemBundle, encoding: .utf8)) ?? ""
            do {
                try Data((system + (system.hasSuffix("\n") || system.isEmpty ? "" : "\n") + authority.certificatePEM).utf8).write(to: bundle)
                chmod(bundle.path, 0o644)
            } catch {
                try? FileManager.default.removeItem(at: directory)
                throw Unavailable(reason: "writing the sandboxes' trust store failed: \(error)")
            }
            trustBundle = bundle
        }
        self.directory = directory
        self.forwarder = forwarder
        return (directory, forwarder)
    }

    /// Removes the directories of stations whose process died without shutting down (kill -9):
    /// each holds a copy of the relay.
    static func sweepLeftDirectories() {
        let temporary = URL(fileURLWithPath: NSTemporaryDirectory())
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix("drover-egress-") {
            let parts = name.split(separator: "-")
            guard parts.count == 4, let owner = pid_t(parts[2]), owner != getpid(), kill(owner, 0) != 0, errno == ESRCH else { continue }
            let directory = temporary.appendingPathComponent(name)
            var status = stat()
            // Only a directory of this user's, never through a link.
            guard lstat(directory.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR, status.st_uid == getuid() else { continue }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    static var executableDirectory: URL? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map { URL(fileURLWithPath: $0).deletingLastPathComponent() }
    }

    /// `DROVER_EGRESS_FORWARDER`, else `drover-egress-forward` beside the running executable
    /// (the same build directory holds `drover`, the test runner and the relay).
    static func locateForwarder() -> URL? {
        if let path = ProcessInfo.processInfo.environment["DROVER_EGRESS_FORWARDER"], !path.isEmpty {
            return FileManager.default.isExecutableFile(atPath: path) ? URL(fileURLWithPath: path) : nil
        }
        guard let directory = executableDirectory else { return nil }
        let candidate = directory.appendingPathComponent("drover-egress-forward")
        return FileManager.default.isExecutableFile(atPath: candidate.path) ? candidate : nil
    }
}
