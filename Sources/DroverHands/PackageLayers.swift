import DroverCore
import DroverEgress
import DroverTools
import Foundation

/// Installs an environment's pip packages once per configuration into a cached directory
/// (`pip install --target`, in a sandbox of its own), which sandboxes of that configuration mount
/// read-only. Concurrent requests for one configuration share one install; a finished layer is
/// found on disk by later processes too.
///
/// The layers live on a volume of their own (see `LoopVolume`), so that a sandbox's mountinfo
/// shows a layer as `/pip-KEY` on a loop device, never the hands root's host path.
public actor PackageLayers {
    public let volume: LoopVolume
    public nonisolated var root: URL { volume.mountPoint }
    /// Extra `pip install` arguments, for example `--no-index --find-links DIR` for an offline
    /// wheel directory. Part of no cache key: change `root` when they change what gets installed.
    public let pipOptions: [String]
    private var installing: [String: Task<URL, Error>] = [:]
    /// Installs reach the registries through an egress proxy of their own.
    private let station: EgressStation

    /// The default size of the layers' volume: the most all configurations' packages take together.
    public static let defaultVolumeBytes = 32 << 30

    /// `directory` holds the layers' volume.
    public init(directory: URL, volumeBytes: Int = defaultVolumeBytes, pipOptions: [String] = [], egressGate: EgressGate = EgressGate()) {
        volume = LoopVolume(directory: directory, sizeBytes: volumeBytes)
        self.pipOptions = pipOptions
        station = EgressStation(gate: egressGate)
    }

    public struct InstallFailed: Error, CustomStringConvertible {
        public let packages: [String]
        public let output: String
        public var description: String {
            "installing the environment's pip packages \(packages) failed. Fix: check the names and versions in config.packages.pip. pip said:\n\(output)"
        }
    }

    /// The layer's directory for `config`, installed if needed; nil when it has no packages.
    public func layer(for config: EnvironmentConfig) async throws -> URL? {
        guard !config.pip.isEmpty else { return nil }
        try await volume.open()
        let key = config.packagesKey
        let directory = root.appendingPathComponent("pip-\(key)")
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(".drover-complete").path) { return directory }
        if let running = installing[key] { return try await running.value }
        let options = pipOptions
        let station = station
        let task = Task { try await Self.install(config.pip, into: directory, options: options, station: station) }
        installing[key] = task
        defer { installing[key] = nil }
        return try await task.value
    }

    /// Removes the install proxy's directory.
    public func shutdown() async {
        await station.shutdown()
    }

    /// Where the layer being built is mounted inside the install sandbox.
    static let layerMount = "/opt/drover/layer"

    /// Host files the install sandbox needs beyond the system paths: name resolution and pip's
    /// own configuration (an operator's index mirror lives there).
    static let installFiles = ["/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/pip.conf", "/etc/gai.conf"]
        .filter { FileManager.default.fileExists(atPath: $0) }

    static let proxyVariables = ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy", "ALL_PROXY"]

    /// Whether the operator sends the host's traffic through a proxy of their own, which the
    /// egress proxy cannot chain to yet: installs then keep the host's network and that proxy.
    public static var operatorProxy: Bool {
        let environment = ProcessInfo.processInfo.environment
        return proxyVariables.contains { $0.lowercased() != "no_proxy" && !(environment[$0] ?? "").isEmpty }
    }

    /// Where an install may connect: the public package registries, and the hosts of the
    /// operator's own indexes (`--index-url`, `--extra-index-url`, `PIP_INDEX_URL`,
    /// `PIP_EXTRA_INDEX_URL`), named exactly, so an index on a private address is reachable.
    static func installPolicy(options: [String], environment: [String: String] = ProcessInfo.processInfo.environment) -> NetworkPolicy {
        var urls: [String] = []
        for (index, option) in options.enumerated() {
            if ["--index-url", "-i", "--extra-index-url"].contains(option), index + 1 < options.count { urls.append(options[index + 1]) }
            for prefix in ["--index-url=", "--extra-index-url="] where option.hasPrefix(prefix) {
                urls.append(String(option.dropFirst(prefix.count)))
            }
        }
        for name in ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"] {
            urls += (environment[name] ?? "").split(separator: " ").map(String.init)
        }
        var hosts: [HostPattern] = []
        for url in urls {
            if let host = URLComponents(string: url)?.host, let pattern = try? HostPattern(host), !hosts.contains(pattern) { hosts.append(pattern) }
        }
        return NetworkPolicy(access: .limited, allowedHosts: hosts, allowPackageManagers: true)
    }

    /// pip runs in a bubblewrap sandbox of its own, as nobody: it sees the system read-only, its
    /// staging directory read-write and nothing else of the host (no data directory, no hands
    /// root, no workspace), with an environment of PATH, HOME, LANG and the operator's PIP_
    /// variables only. `--only-binary :all:` means no package's build code runs at all: a wheel is
    /// unpacked, never executed. With `egress` it has no network but the egress proxy, under
    /// `installPolicy`, so an index page cannot send pip to the host's loopback or network;
    /// without (`operatorProxy`), the host's network and the operator's proxy variables.
    static func installCommand(
        _ packages: [String], staging: URL, options: [String], egress: SandboxEgress?
    ) throws -> (executable: String, arguments: [String]) {
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"]
        for (name, value) in ProcessInfo.processInfo.environment where name.hasPrefix("PIP_") || (egress == nil && proxyVariables.contains(name)) {
            environment[name] = value
        }
        var arguments = [
            "--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        ]
        if let egress {
            arguments += egress.bindArguments
            for (name, value) in egress.environment(keepsLoopback: false) { environment[name] = value }
        } else {
            arguments.append("--share-net")
        }
        for path in Sandbox.systemPaths + installFiles { arguments += ["--ro-bind", path, path] }
        // The operator's options and PIP_ settings may name local wheel directories or files
        // (`--find-links DIR`, PIP_FIND_LINKS, PIP_CONFIG_FILE): those are seen read-only.
        let named = options + environment.filter { $0.key.hasPrefix("PIP_") }.values.flatMap { $0.split(separator: " ").map(String.init) }
        for path in Set(named).sorted() where path.hasPrefix("/") && FileManager.default.fileExists(atPath: path) {
            arguments += ["--ro-bind", path, path]
        }
        arguments += ["--bind", staging.path, layerMount, "--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { arguments += ["--setenv", name, value] }
        arguments +=
            (egress?.commandPrefix ?? []) + [
                "/usr/bin/python3", "-m", "pip", "install", "--target", layerMount, "--no-input", "--disable-pip-version-check",
                "--no-warn-script-location", "--no-cache-dir", "--only-binary", ":all:",
            ] + options + ["--"] + packages
        return try Sandbox.bubblewrapCommand(arguments)
    }

    static func install(_ packages: [String], into directory: URL, options: [String], station: EgressStation) async throws -> URL {
        try FileManager.default.createDirectory(at: directory.deletingLastPathComponent(), withIntermediateDirectories: true)
        let staging = directory.deletingLastPathComponent().appendingPathComponent(".staging-\(Identifier.make(prefix: "p").suffix(10))")
        // The log sits beside the staging directory, in the host-only packages folder: the
        // sandbox cannot plant anything where the host opens it.
        let log = staging.path + ".log"
        defer {
            try? FileManager.default.removeItem(at: staging)
            unlink(log)
        }
        try Sandbox.prepareDirectories(staging)
        let egress = operatorProxy ? nil : try await station.attach(policy: installPolicy(options: options))
        // bubblewrap starts with an empty environment; the sandbox's own is set by --setenv.
        let install = try installCommand(packages, staging: staging, options: options, egress: egress)
        let exitCode: Result<Int32?, Error>
        do {
            let child = try ChildProcess(executable: install.executable, arguments: install.arguments, environment: [:], outputPath: log)
            while child.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            exitCode = .success(child.exitCode)
        } catch {
            exitCode = .failure(error)
        }
        // However the install ended, its socket goes with it.
        await egress?.listener.close()
        guard try exitCode.get() == 0 else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw InstallFailed(packages: packages, output: String(output.suffix(2000)))
        }
        // The install sandbox is gone, so nothing races what follows. The layer becomes the
        // host's: owned by root where Drover is root, readable by all, writable by no sandbox.
        if getuid() == 0 { _ = try? await runQuietly("/bin/chown", ["-R", "-P", "-h", "0:0", staging.path]) }
        _ = try? await runQuietly("/bin/chmod", ["-R", "a+rX,go-w", staging.path])
        // The marker is made fresh, never through whatever name pip's files left there.
        let marker = staging.appendingPathComponent(".drover-complete").path
        unlink(marker)
        let fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw InstallFailed(packages: packages, output: "could not write \(marker): \(String(cString: strerror(errno)))")
        }
        close(fd)
        do {
            try FileManager.default.moveItem(at: staging, to: directory)
        } catch  where FileManager.default.fileExists(atPath: directory.appendingPathComponent(".drover-complete").path) {
            // Another process finished the same layer first: use theirs.
        }
        return directory
    }

    private static func runQuietly(_ executable: String, _ arguments: [String]) async throws -> Int32? {
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: [:])
        while child.isRunning { try await Task.sleep(for: .milliseconds(5)) }
        return child.exitCode
    }
}
