import DroverCore
import DroverHands
import DroverTesting
import Foundation
import Testing

private let secret = "sk-drover-planted-\(Identifier.make(prefix: "s").suffix(16))"

/// A sandbox over a fresh workspace, with a secret planted in this (the host) process's
/// environment and in another session's workspace.
private struct HostileFixture {
    let sandbox: Sandbox
    let root: URL
    let otherWorkspace: URL
    let hostFile: URL

    init(wallClock: Duration = .seconds(20)) throws {
        setenv("DROVER_TEST_SECRET", secret, 1)
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-hostile-\(Identifier.make(prefix: "h").suffix(10))")
        otherWorkspace = root.appendingPathComponent("other-session")
        try FileManager.default.createDirectory(at: otherWorkspace, withIntermediateDirectories: true)
        try secret.write(to: otherWorkspace.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
        hostFile = root.appendingPathComponent("drover.db")
        try secret.write(to: hostFile, atomically: true, encoding: .utf8)
        var limits = SandboxLimits()
        limits.wallClock = wallClock
        sandbox = try Sandbox(workspace: root.appendingPathComponent("this-session"), limits: limits)
    }

    func run(_ command: String) async throws -> SandboxRun {
        let result = try await sandbox.run(command)
        #expect(!result.output.contains(secret), "the planted secret leaked: \(result.output.prefix(500))")
        return result
    }

    func cleanUp() async {
        await sandbox.close()
        try? FileManager.default.removeItem(at: root)
    }
}

@Suite("Sandbox against hostile code", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxTests {
    @Test("the host environment is invisible: /proc/1/environ, env, /proc/self/environ")
    func environment() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let result = try await fixture.run("cat /proc/1/environ | tr '\\0' '\\n'; echo ---; env; echo ---; tr '\\0' '\\n' < /proc/self/environ")
        #expect(result.exitCode == 0, "\(result.output)")
        let names = Set(result.output.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        // OLDPWD is the sandbox shell's own, set by its `cd`.
        #expect(names.isSubset(of: ["PATH", "HOME", "LANG", "PWD", "OLDPWD", "SHLVL", "_", "---"]), "unexpected variables: \(names)")
    }

    @Test("host files, /root and another session's workspace cannot be read")
    func reading() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let result = try await fixture.run("""
            cat \(fixture.hostFile.path) 2>&1; cat \(fixture.otherWorkspace.path)/secret.txt 2>&1; ls -a /root 2>&1; \
            ls \(fixture.root.path) 2>&1; grep -rl "\(secret.prefix(12))" /tmp /workspace /etc /proc/1/environ 2>/dev/null; echo done
            """)
        #expect(result.output.contains("done"))
    }

    @Test("nothing outside /workspace can be written; the workspace can, and it lives on the host")
    func writing() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let result = try await fixture.run("""
            for target in /usr/evil /etc/evil /evil /bin/evil /lib/evil \(fixture.root.path)/evil; do
              (echo x > $target) 2>/dev/null && echo "WROTE $target"
            done
            echo kept > /workspace/result.txt && echo workspace-ok
            """)
        #expect(!result.output.contains("WROTE"), "\(result.output)")
        #expect(result.output.contains("workspace-ok"))
        #expect(!FileManager.default.fileExists(atPath: fixture.root.appendingPathComponent("evil").path))
        let workspace = await fixture.sandbox.workspace
        #expect(try String(contentsOf: workspace.appendingPathComponent("result.txt"), encoding: .utf8) == "kept\n")
    }

    @Test("no network: a TCP connection to the host's loopback or the internet fails")
    func network() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let listener = try await ScriptedModelServer.start(script: ModelScript(turns: [.init(text: "x")]))
        let result = try await fixture.run("""
            (exec 3<>/dev/tcp/127.0.0.1/\(listener.port)) 2>/dev/null && echo "CONNECTED loopback"
            (exec 3<>/dev/tcp/1.1.1.1/80) 2>/dev/null && echo "CONNECTED internet"
            python3 -c "import socket; socket.create_connection(('127.0.0.1', \(listener.port)), timeout=2)" 2>/dev/null && echo "CONNECTED python"
            echo checked
            """)
        await listener.stop()
        #expect(result.output.contains("checked"))
        #expect(!result.output.contains("CONNECTED"), "\(result.output)")
    }

    @Test("an endless loop is stopped at the wall-clock limit, with every process it started")
    func endlessLoop() async throws {
        let fixture = try HostileFixture(wallClock: .seconds(1))
        defer { Task { await fixture.cleanUp() } }
        let started = ContinuousClock.now
        let result = try await fixture.run("sleep 1000 & while true; do :; done")
        #expect(result.timedOut && result.exitCode == 124)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(result.output.contains("wall-clock limit"))
        // The kernel tears the pid namespace down just after bubblewrap's init dies.
        var survivor = true
        for _ in 0..<100 where survivor {
            survivor = try await runProgram("/usr/bin/pgrep", ["-f", "sleep 1000"]).status == 0
            if survivor { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(!survivor, "a child of the loop outlived the sandbox")
    }

    @Test("a fork bomb is contained, and the host still runs sandboxes afterwards")
    func forkBomb() async throws {
        let fixture = try HostileFixture(wallClock: .seconds(3))
        defer { Task { await fixture.cleanUp() } }
        _ = try await fixture.run("bomb() { bomb | bomb & }; bomb; sleep 10")
        let after = try await fixture.run("echo healthy")
        #expect(after.output.contains("healthy") && after.exitCode == 0)
    }

    @Test("a memory bomb fails inside the sandbox")
    func memoryBomb() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let result = try await fixture.run("python3 -c 'x = bytearray(8 * 1024 ** 3)' 2>&1; echo exit=$?")
        #expect(result.output.contains("MemoryError"), "\(result.output)")
        #expect(!result.timedOut)
    }

    @Test("a 1 GB output flood is cut short, with a visible marker")
    func outputFlood() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let started = ContinuousClock.now
        let result = try await fixture.run("head -c 1000000000 /dev/zero | tr '\\0' 'a'")
        #expect(result.truncated)
        #expect(result.output.utf8.count < 70_000)
        #expect(result.output.contains("[drover: output truncated"))
        #expect(ContinuousClock.now - started < .seconds(15))
    }
}

@Suite("Sandbox death", .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxDeathTests {
    @Test("the sandbox killed mid-call gives an error result; the workspace survives and the next call works")
    func killedMidCall() async throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-death-\(Identifier.make(prefix: "d").suffix(10))")
        defer { try? FileManager.default.removeItem(at: root) }
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"))
        let call = Task { try await sandbox.runInShell("echo before > kept.txt; sleep 30") }
        // Kill only once the call is under way (its file exists), however slow the machine.
        let kept = root.appendingPathComponent("ws/kept.txt").path
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: kept), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let pid = try #require(await sandbox.pid, "no sandbox to kill")
        kill(pid, SIGKILL)
        let result = try await call.value
        #expect(result.exitCode != 0 && !result.timedOut)
        #expect(try String(contentsOf: root.appendingPathComponent("ws/kept.txt"), encoding: .utf8) == "before\n")
        #expect(result.output.contains("the shell ended"))
        let next = try await sandbox.run("cat kept.txt")
        #expect(next.exitCode == 0 && next.output == "before\n")
        #expect(await sandbox.pid != pid)
        await sandbox.close()
    }
}
