import DroverBrain
import DroverCore
import DroverHands
import DroverTesting
import DroverTools
import Foundation
import Testing

/// Writes a one-module wheel, `drovertiny`, into `directory`: pip installs it with
/// `--no-index --find-links`, so the tests need no network.
func makeTinyWheel(in directory: URL) async throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let program = """
        import sys, zipfile
        with zipfile.ZipFile(sys.argv[1] + "/drovertiny-1.0-py3-none-any.whl", "w") as z:
            z.writestr("drovertiny/__init__.py", "def hello():\\n    return 'hello from drovertiny'\\n")
            z.writestr("drovertiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\\nName: drovertiny\\nVersion: 1.0\\n")
            z.writestr("drovertiny-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\\nGenerator: drover-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
            z.writestr("drovertiny-1.0.dist-info/RECORD", "")
        """
    let made = try await runProgram("/usr/bin/python3", ["-c", program, directory.path])
    #expect(made.status == 0, "\(made.output)")
}

private func cloudConfig(pip: [String] = [], extra: [String: JSONValue] = [:], networking: JSONValue? = nil) -> JSONValue {
    var packages: [String: JSONValue] = ["type": .string("packages"), "pip": .array(pip.map(JSONValue.string))]
    for (key, value) in extra { packages[key] = value }
    return .object([
        "type": .string("cloud"),
        "networking": networking
            ?? .object([
                "type": .string("limited"), "allowed_hosts": .array([]),
                "allow_mcp_servers": .bool(false), "allow_package_managers": .bool(false),
            ]),
        "packages": .object(packages),
    ])
}

private func text(_ result: ToolResult) -> String {
    result.content.compactMap(\.text).joined()
}

/// Issue 12, hole 3: a pip "requirement" that is a local path ran a build backend the agent wrote,
/// as root, on the host. Only names with version specifiers are taken now.
@Suite("pip requirements")
struct PipRequirementTests {
    @Test("names, extras and version specifiers are accepted")
    func accepted() throws {
        for spec in [
            "pytest", "requests==2.32.3", "requests[socks,security]>=2.31, <3", "numpy==2.1.*", "zope.interface~=6.0", "a-b_c.d!=1.0",
            "pkg===1.0+local",
        ] {
            #expect(PipRequirement.problem(with: spec) == nil, "\(spec)")
            #expect(throws: Never.self) { try EnvironmentConfig.parse(cloudConfig(pip: [spec])) }
        }
    }

    @Test("paths, URLs, VCS specifiers, direct references and options are refused, naming the index")
    func refused() throws {
        let hostile = [
            "/var/tmp/drover-hands/x/workspaces/sesn_1/pkg", "./pkg", "../pkg", "pkg @ file:///tmp/pkg", "git+https://example.invalid/x.git",
            "https://example.invalid/x.whl", "-e .", "--index-url=https://evil.invalid", "pkg; python_version>'3'",
            "pkg==1.0 --hash=sha256:00", "file:pkg", "pkg>=1,<", "pkg[extra", "C:\\pkg", "pkg==$(id)", "",
        ]
        for spec in hostile {
            #expect(PipRequirement.problem(with: spec) != nil, "\(spec)")
            do {
                _ = try EnvironmentConfig.parse(cloudConfig(pip: ["pytest", spec]))
                Issue.record("accepted \(spec)")
            } catch let invalid as EnvironmentConfig.Invalid {
                #expect(invalid.field == "config.packages.pip[1]" || spec.isEmpty || spec.hasPrefix("-"), "\(spec): \(invalid)")
            }
        }
    }
}

@Suite("Environment packages and networking", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct EnvironmentPackagesTests {
    @Test("pip packages are installed once per config into a read-only layer that every sandbox of that config imports")
    func pipLayer() async throws {
        let root = scratchDirectory("pkgs")
        defer { Task { await removeHandsRoot(root) } }
        try await makeTinyWheel(in: root.appendingPathComponent("wheels"))
        var settings = SandboxPoolSettings()
        settings.warmPerConfiguration = 1
        settings.pipOptions = ["--no-index", "--find-links", root.appendingPathComponent("wheels").path]
        let toolset = AgentToolset(root: root.appendingPathComponent("hands"), pool: settings)
        let environment = cloudConfig(pip: ["drovertiny==1.0"])
        func call(_ session: SessionID, _ command: String, environment: JSONValue?) async throws -> ToolResult {
            let environment = try EnvironmentConfig.parse(environment)
            return try await toolset.execute(
                name: "bash", input: .object(["command": .string(command)]),
                context: ToolContext(
                    session: session, fence: SessionFence(session: session, epoch: 1), deadline: .now + .seconds(60), environment: environment))
        }
        let first = SessionID.make()
        let imported = try await call(first, "python3 -c 'import drovertiny; print(drovertiny.hello())'", environment: environment)
        #expect(!imported.isError && text(imported) == "hello from drovertiny\n", "\(text(imported))")
        let written = try await call(
            first, "touch /opt/drover/python/evil 2>&1; echo x > /opt/drover/python/drovertiny/__init__.py 2>&1; echo PYTHONPATH=$PYTHONPATH",
            environment: environment)
        #expect(text(written).contains("Read-only file system") && text(written).contains("PYTHONPATH=/opt/drover/python"), "\(text(written))")
        // The layer is bound from a volume of its own: the sandbox learns no host path from it.
        if LoopVolumeSupport.unavailableReason == nil {
            let mounts = try await call(first, "grep -E ' /opt/drover/python | /workspace ' /proc/self/mountinfo", environment: environment)
            #expect(!text(mounts).contains(root.path) && text(mounts).contains(" /pip-") && text(mounts).contains("/dev/loop"), "\(text(mounts))")
        }

        let packages = toolset.pool.layers.root
        let layers = try FileManager.default.contentsOfDirectory(atPath: packages.path).filter { $0.hasPrefix("pip-") }
        #expect(layers.count == 1)
        let marker = packages.appendingPathComponent(layers[0]).appendingPathComponent(".drover-complete").path
        let installedAt = try FileManager.default.attributesOfItem(atPath: marker)[.modificationDate] as? Date

        // A second session of the same config gets the warm sandbox of that config, on the same layer.
        let pool = toolset.pool
        #expect(try await eventuallyWarm(pool))
        let second = SessionID.make()
        let again = try await call(second, "python3 -c 'import drovertiny; print(drovertiny.hello())'", environment: environment)
        #expect(text(again) == "hello from drovertiny\n", "\(text(again))")
        #expect(try FileManager.default.attributesOfItem(atPath: marker)[.modificationDate] as? Date == installedAt, "the layer was installed twice")
        #expect(try FileManager.default.contentsOfDirectory(atPath: packages.path).filter { $0.hasPrefix("pip-") }.count == 1)

        // A session without the environment does not see the layer.
        let plain = try await call(SessionID.make(), "python3 -c 'import drovertiny' 2>&1 | tail -1", environment: nil)
        #expect(text(plain).contains("ModuleNotFoundError"), "\(text(plain))")
        await pool.shutdown()
    }

    private func eventuallyWarm(_ pool: SandboxPool) async throws -> Bool {
        for _ in 0..<3000 {
            if await pool.stats.warm >= 1 { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    @Test("unsupported package managers, bad network entries and bad specifiers answer clear errors naming the field")
    func refusals() async throws {
        let cases: [(JSONValue, String)] = [
            (cloudConfig(extra: ["npm": .array([.string("left-pad")])]), "config.packages.npm"),
            (cloudConfig(extra: ["apt": .array([.string("curl")])]), "config.packages.apt"),
        ]
        for (config, field) in cases {
            #expect {
                try EnvironmentConfig.parse(config)
            } throws: { error in
                guard let error = error as? EnvironmentConfig.NotBuiltYet else { return false }
                return error.field == field && error.description.contains("not built yet") && error.description.contains("Fix:")
            }
        }
        for (config, mention) in [
            (cloudConfig(pip: ["--index-url=http://evil"]), "config.packages.pip"),
            (cloudConfig(networking: .object(["type": .string("open")])), "config.networking.type"),
            (cloudConfig(networking: .object(["type": .string("limited"), "allowed_hosts": .array([.string("http://x.org")])])), "allowed_hosts[0]"),
            (JSONValue.object(["type": .string("docker")]), "config.type"),
        ] {
            #expect {
                try EnvironmentConfig.parse(config)
            } throws: { error in
                (error as? EnvironmentConfig.Invalid)?.description.contains(mention) == true
            }
        }
        #expect(try EnvironmentConfig.parse(cloudConfig(pip: ["b", "a"])) == EnvironmentConfig(pip: ["a", "b"]))
        // A self-hosted session's config names its environment, whose workers run its toolset.
        let selfHosted = try EnvironmentConfig.parse(.object(["type": .string("self_hosted"), "environment_id": .string("env_1")]))
        #expect(selfHosted.selfHostedEnvironment == "env_1" && selfHosted.runsRemotely("bash") && !selfHosted.runsRemotely("web_fetch"))
        #expect(throws: EnvironmentConfig.Invalid.self) { try EnvironmentConfig.parse(.object(["type": .string("self_hosted")])) }
        #expect(try EnvironmentConfig.parse(cloudConfig(pip: ["a"])).key != EnvironmentConfig.none.key)

        // The hands take only a parsed `EnvironmentConfig`, so a config they cannot honour never
        // reaches a sandbox: the turn that would use it ends first (TurnRunnerTests).
        #expect(throws: EnvironmentConfig.NotBuiltYet.self) {
            try EnvironmentConfig.parse(cloudConfig(extra: ["npm": .array([.string("left-pad")])]))
        }
        let networked = try EnvironmentConfig.parse(cloudConfig(networking: .object(["type": .string("unrestricted")])))
        #expect(networked.network.access == .unrestricted && networked.key != EnvironmentConfig.none.key)
    }

    @Test("a pip install that fails says which packages and what pip said")
    func installFailure() async throws {
        let root = scratchDirectory("pipfail")
        defer { Task { await removeHandsRoot(root) } }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let layers = PackageLayers(directory: root.appendingPathComponent("layers"), pipOptions: ["--no-index", "--find-links", root.path])
        await #expect {
            _ = try await layers.layer(for: EnvironmentConfig(pip: ["no-such-package-drover==9.9"]))
        } throws: { error in
            let text = "\(error)"
            return text.contains("no-such-package-drover==9.9") && text.contains("config.packages.pip") && text.contains("No matching distribution")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: layers.root.path).filter { $0.hasPrefix("pip-") }.isEmpty)
    }

    @Test(
        "pip installs reach the network only through the egress proxy: the operator's index by name, nothing else on the host",
        .enabled(if: !PackageLayers.operatorProxy, "the operator's proxy variables keep installs on the host's network"))
    func installEgress() async throws {
        let root = scratchDirectory("pipnet")
        defer { Task { await removeHandsRoot(root) } }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let origin = try await LoopbackOrigin.start()
        // The operator's index, on the host's loopback, is named by the options: reached. A link
        // to another name for the same host (as an index page could give) is not: before the
        // proxy, pip had the host's network and fetched both.
        let layers = PackageLayers(
            directory: root.appendingPathComponent("layers"),
            pipOptions: ["--index-url", "http://127.0.0.1:\(origin.port)/simple/", "--find-links", "http://localhost:\(origin.port)/links/"])
        await #expect(throws: PackageLayers.InstallFailed.self) {
            _ = try await layers.layer(for: EnvironmentConfig(pip: ["drover-no-such-package==1.0"]))
        }
        let paths = origin.requests.map(\.uri)
        #expect(paths.contains { $0.hasPrefix("/simple/drover-no-such-package") }, "\(paths)")
        #expect(!paths.contains { $0.hasPrefix("/links") }, "\(paths)")
        await layers.shutdown()
        await origin.stop()
    }

    @Test(
        "a real package from PyPI (six) installs and imports",
        .enabled(if: ProcessInfo.processInfo.environment["DROVER_SKIP_PYPI"] == nil, "DROVER_SKIP_PYPI is set"))
    func realPyPI() async throws {
        let root = scratchDirectory("pypi")
        defer { Task { await removeHandsRoot(root) } }
        var settings = SandboxPoolSettings()
        settings.warmPerConfiguration = 0
        let pool = SandboxPool(root: root, settings: settings)
        let sandbox = try await pool.checkout(SessionID.make(), environment: EnvironmentConfig(pip: ["six==1.16.0"]))
        let run = try await sandbox.run("python3 -c 'import six; print(six.__version__, six.__file__)'")
        #expect(run.output == "1.16.0 /opt/drover/python/six.py\n", "\(run.output)")
        await pool.shutdown()
    }
}
