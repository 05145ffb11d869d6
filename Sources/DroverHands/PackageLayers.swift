import DroverCore
import Foundation

/// Installs an environment's pip packages once per configuration into a cached directory
/// (`pip install --target`, outside any sandbox), which sandboxes of that configuration mount
/// read-only. Concurrent requests for one configuration share one install; a finished layer is
/// found on disk by later processes too.
public actor PackageLayers {
    public let root: URL
    /// Extra `pip install` arguments, for example `--no-index --find-links DIR` for an offline
    /// wheel directory. Part of no cache key: change `root` when they change what gets installed.
    public let pipOptions: [String]
    private var installing: [String: Task<URL, Error>] = [:]

    public init(root: URL, pipOptions: [String] = []) {
        self.root = root.standardizedFileURL
        self.pipOptions = pipOptions
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
        let key = config.key
        let directory = root.appendingPathComponent("pip-\(key)")
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(".drover-complete").path) { return directory }
        if let running = installing[key] { return try await running.value }
        let options = pipOptions
        let task = Task { try await Self.install(config.pip, into: directory, options: options) }
        installing[key] = task
        defer { installing[key] = nil }
        return try await task.value
    }

    static func install(_ packages: [String], into directory: URL, options: [String]) async throws -> URL {
        try FileManager.default.createDirectory(at: directory.deletingLastPathComponent(), withIntermediateDirectories: true)
        let staging = directory.deletingLastPathComponent().appendingPathComponent(".staging-\(Identifier.make(prefix: "p").suffix(10))")
        let log = staging.path + ".log"
        defer {
            try? FileManager.default.removeItem(at: staging)
            unlink(log)
        }
        // pip runs with a minimal environment: no host secret reaches a package's build (I5).
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": directory.deletingLastPathComponent().path, "LANG": "C.UTF-8"]
        for (name, value) in ProcessInfo.processInfo.environment
        where name.hasPrefix("PIP_") || ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"].contains(name) {
            environment[name] = value
        }
        // The sandbox's python is the system's: install for that interpreter.
        let child = try ChildProcess(
            executable: "/usr/bin/python3",
            arguments: ["-m", "pip", "install", "--target", staging.path, "--no-input", "--disable-pip-version-check",
                        "--no-warn-script-location", "--root-user-action=ignore"] + options + ["--"] + packages,
            environment: environment, outputPath: log)
        while child.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        guard child.exitCode == 0 else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw InstallFailed(packages: packages, output: String(output.suffix(2000)))
        }
        guard FileManager.default.createFile(atPath: staging.appendingPathComponent(".drover-complete").path, contents: nil) else {
            throw InstallFailed(packages: packages, output: "could not write \(staging.path)/.drover-complete")
        }
        // Everything readable (the sandbox runs as nobody), nothing writable but by the owner.
        _ = try? await runQuietly("/bin/chmod", ["-R", "a+rX,go-w", staging.path])
        do {
            try FileManager.default.moveItem(at: staging, to: directory)
        } catch where FileManager.default.fileExists(atPath: directory.appendingPathComponent(".drover-complete").path) {
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
