import DroverCore
import DroverModelStub
import DroverTesting
import Foundation
import Testing

@testable import DroverHands

private let secret = "sk-drover-planted-\(Identifier.make(prefix: "s").suffix(16))"

/// A sandbox over a fresh workspace, with a secret planted in this (the host) process's
/// environment and in another session's workspace.
private struct HostileFixture {
    let sandbox: Sandbox
    let root: URL
    let otherWorkspace: URL
    let hostFile: URL

    // Generous: under a loaded machine zeroing 2 GiB for the memory bomb took over 20 s. Tests
    // about the limit itself pass a short one.
    init(wallClock: Duration = .seconds(300)) throws {
        setenv("DROVER_TEST_SECRET", secret, 1)
        root = scratchDirectory("hostile")
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
        let result = try await fixture.run(
            """
            cat \(fixture.hostFile.path) 2>&1; cat \(fixture.otherWorkspace.path)/secret.txt 2>&1; ls -a /root 2>&1; \
            ls \(fixture.root.path) 2>&1; grep -rl "\(secret.prefix(12))" /tmp /workspace /etc /proc/1/environ 2>/dev/null; echo done
            """)
        #expect(result.output.contains("done"))
    }

    @Test("nothing outside /workspace can be written; the workspace can, and it lives on the host")
    func writing() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let result = try await fixture.run(
            """
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
        let result = try await fixture.run(
            """
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
        // The loop never ends by itself: only the limit can end the call.
        let result = try await finishing(within: .seconds(60)) { try await fixture.run("sleep 1000 & while true; do :; done") }
        #expect(result.timedOut && result.exitCode == 124)
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
        // The claim is that the host still runs sandboxes, not how fast: a loaded machine gets time.
        let after = try await fixture.sandbox.run("echo healthy", wallClock: .seconds(300))
        #expect(after.output.contains("healthy") && after.exitCode == 0)
    }

    @Test("a memory bomb fails inside the sandbox, killed at the sandbox's memory limit")
    func memoryBomb() async throws {
        let fixture = try HostileFixture()
        defer { Task { await fixture.cleanUp() } }
        let result = try await fixture.run("python3 -c 'x = bytearray(8 * 1024 ** 3)' 2>&1; echo exit=$?")
        if fixture.sandbox.cgroup != nil {
            #expect(result.output.contains("exit=137") && result.output.contains("killed: memory limit 2 GiB"), "\(result.output)")
        } else {
            // rlimits only: the allocation is refused at the address-space limit.
            #expect(result.output.contains("MemoryError"), "\(result.output)")
        }
        #expect(!result.timedOut)
    }

    @Test("a flood from many writers that outpace the reader is still cut short: the call's limits are checked between reads")
    func manyWriterFlood() async throws {
        // Eight writers keep the pipe full however fast it is read. Before reads were bounded,
        // the reader never saw it empty and never returned to its limits: this ran until the
        // writers stopped, holding a worker thread all along.
        let fixture = try HostileFixture(wallClock: .seconds(3600))
        defer { Task { await fixture.cleanUp() } }
        let result = try await finishing(within: .seconds(120)) {
            try await fixture.run("for i in 1 2 3 4 5 6 7 8; do yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa & done; wait")
        }
        #expect(result.truncated && !result.timedOut && result.exitCode == 141, "exit \(result.exitCode)")
        #expect(result.output.contains("[drover: output truncated"))
    }

    @Test("an endless output flood is cut short, with a visible marker")
    func outputFlood() async throws {
        // An hour's wall clock: only the flood check can end this call within the test.
        let fixture = try HostileFixture(wallClock: .seconds(3600))
        defer { Task { await fixture.cleanUp() } }
        let result = try await finishing(within: .seconds(120)) { try await fixture.run("yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") }
        #expect(result.truncated && !result.timedOut && result.exitCode == 141, "exit \(result.exitCode)")
        #expect(result.output.utf8.count < 70_000)
        #expect(result.output.contains("[drover: output truncated"))
    }
}

@Suite("Sandbox death", .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxDeathTests {
    @Test("the sandbox killed mid-call gives an error result; the workspace survives and the next call works")
    func killedMidCall() async throws {
        let root = scratchDirectory("death")
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

    @Test("a start that does not answer in time is killed and tried once more; the error says where its processes waited")
    func startTimeout() async throws {
        let root = scratchDirectory("start")
        defer { try? FileManager.default.removeItem(at: root) }
        // No cgroup: a shell killed while it joins one (on cgroup v1, waiting for an RCU grace
        // period under the kernel's cgroup locks) stopped process and thread creation on the whole
        // machine for up to 40 s, and other tests running meanwhile timed out.
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"), cgroup: false)
        // No shell answers within no time at all: both tries time out at their first look.
        await sandbox.overridePatience(.zero)
        let error = await #expect(throws: Sandbox.StartFailed.self) { try await sandbox.run("true") }
        let message = error?.description ?? ""
        #expect(message.components(separatedBy: "was not ready within").count == 3, "not tried twice: \(message)")
        // Each try names its live processes with their kernel wait channels.
        #expect(message.components(separatedBy: "wchan=").count >= 3, "\(message)")
        #expect(await sandbox.pid == nil, "a shell that missed its start is left running")
        await sandbox.overridePatience(.seconds(60))
        let run = try await sandbox.run("echo started")
        #expect(run.exitCode == 0 && run.output == "started\n", "\(run.output)")
        await sandbox.close()
    }
}

/// Issue 12, holes 1 and 2: what the host hands a sandbox, and what it does in the sandbox's
/// writable directories. Each test fails on the code before the fix.
@Suite("Sandbox boundary exploits", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxBoundaryTests {
    @Test("the shell holds exactly fds 0 to 3, though the host holds sockets without close-on-exec")
    func descriptors() async throws {
        let leaked = try LeakySockets()
        defer { leaked.close() }
        let root = scratchDirectory("fds")
        defer { try? FileManager.default.removeItem(at: root) }
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"))
        // While a command runs, its stdin is /dev/null and bash keeps its own stdin (the command
        // channel) at fd 10, close-on-exec, to restore afterwards: no program the command runs gets it.
        // No pipeline while listing: bash holds a pipeline's pipe ends while it forks its stages.
        let shell = try await sandbox.runInShell(
            "ls /proc/$$/fd > /tmp/fds; sort -n /tmp/fds | tr '\\n' ' '; echo; readlink /proc/$$/fd/0; readlink /proc/$$/fd/10 | cut -d: -f1")
        let lines = shell.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "0 1 2 3 10 ", "the shell's descriptors: \(shell.output)")
        #expect(Array(lines.dropFirst()) == ["/dev/null", "socket"], "fd 0 and fd 10 during a command: \(shell.output)")
        let subshell = try await sandbox.run("ls /proc/self/fd | wc -l")
        // ls sees 0-3 and the directory it is reading.
        #expect(subshell.output == "5\n", "a command's descriptors: \(subshell.output)")
        await sandbox.close()
    }

    @Test("a symlink planted in /run/shell never makes the host write, chown or delete through it")
    func shellStateSymlinks() async throws {
        let root = scratchDirectory("call")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let canary = root.appendingPathComponent("host-canary")
        try "untouched".write(to: canary, atomically: true, encoding: .utf8)
        let missing = root.appendingPathComponent("host-created")
        let keptDirectory = root.appendingPathComponent("host-dir")
        try FileManager.default.createDirectory(at: keptDirectory, withIntermediateDirectories: true)
        try "kept".write(to: keptDirectory.appendingPathComponent("file"), atomically: true, encoding: .utf8)
        var limits = SandboxLimits()
        limits.wallClock = .seconds(3)
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"), limits: limits, shellState: root.appendingPathComponent("shell"))
        // The link targets are host paths, as a sandbox reads them from /proc/self/mountinfo.
        let plant = try await sandbox.runInShell(
            """
            cd /run/shell && rm -f .call cwd env && ln -s \(canary.path) .call && ln -s \(missing.path) cwd \
            && ln -s \(keptDirectory.path) env && ls -la /run/shell | grep -c -- '->'
            """)
        #expect(plant.exitCode == 0, "\(plant.output)")
        // Every path through which the host once touched /run/shell: a call, a call in a
        // subshell, a timeout (which forgot the saved state) and a restart.
        _ = try await sandbox.run("echo the next command")
        _ = try await sandbox.runInShell("echo another")
        let slow = try await sandbox.runInShell("sleep 30")
        #expect(slow.timedOut)
        _ = try await sandbox.runInShell("echo after the timeout")
        await sandbox.restartShell()
        _ = try await sandbox.run("true")
        #expect(try String(contentsOf: canary, encoding: .utf8) == "untouched")
        var info = stat()
        #expect(stat(canary.path, &info) == 0 && info.st_uid == getuid(), "the canary changed owner")
        #expect(!FileManager.default.fileExists(atPath: missing.path), "the host created a file through a planted link")
        #expect(try String(contentsOf: keptDirectory.appendingPathComponent("file"), encoding: .utf8) == "kept")
        await sandbox.close()
    }

    @Test("commands travel intact: quotes, newlines, UTF-8, a megabyte, and NUL refused")
    func commandsIntact() async throws {
        let root = scratchDirectory("cmd")
        defer { try? FileManager.default.removeItem(at: root) }
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"))
        let tricky = "printf '%s|' \"a b\" 'c\"d' $'e\\nf' \"é✓\"\necho done"
        let run = try await sandbox.runInShell(tricky)
        #expect(run.output == "a b|c\"d|e\nf|é✓|done\n", "\(run.output)")
        let big = String(repeating: "x", count: 1 << 20)
        let long = try await sandbox.run("s='\(big)'; echo ${#s}")
        #expect(long.output == "\(1 << 20)\n", "\(long.output.prefix(200))")
        let nul = try await sandbox.run("echo a\u{0}b")
        #expect(nul.exitCode != 0 && nul.output.contains("NUL"))
        #expect(try await sandbox.runInShell("echo still here").output == "still here\n")
        await sandbox.close()
    }

    @Test("no nested user namespaces, and /tmp is a small tmpfs rather than half the host's memory")
    func namespacesAndTmp() async throws {
        let root = scratchDirectory("ns")
        defer { try? FileManager.default.removeItem(at: root) }
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"))
        let nested = try await sandbox.run("unshare -Ur id 2>&1; echo status=$?")
        #expect(!nested.output.contains("uid=0") && !nested.output.contains("status=0"), "\(nested.output)")
        let size = try await sandbox.run("df -B1 --output=size /tmp | tail -1 | tr -d ' '")
        #expect(Int(size.output.trimmingCharacters(in: .whitespacesAndNewlines)) == SandboxLimits().tmpBytes, "\(size.output)")
        let fill = try await sandbox.run("head -c 300M /dev/zero 2>&1 > /tmp/fill; echo status=$?")
        #expect(fill.output.contains("No space left") && !fill.output.contains("status=0"), "\(fill.output)")
        await sandbox.close()
    }
}

/// A call can still hold a sandbox's process after the process was killed (a call that timed
/// out reads its output once more). Its channels were closed at the kill, and the next sandbox's
/// took the same descriptor numbers: that last read took another sandbox's output, or blocked
/// for good on its command channel (a CI run hung there), and a write would have reached
/// another session's shell.
@Suite("Sandbox process channels")
struct SandboxProcessChannelTests {
    @Test("a killed shell's channels stay its own: a later read or write reaches no other sandbox's shell")
    func channelsOutliveTheKill() async throws {
        let stale = try SandboxProcess(executable: "/bin/sh", arguments: ["-c", "sleep 600"])
        await stale.kill()
        let next = try SandboxProcess(executable: "/bin/sh", arguments: ["-c", #"read line; echo "next got: $line"; sleep 600"#])
        try #require(
            Set(next.descriptors).isDisjoint(with: stale.descriptors),
            "the next process got the killed one's descriptors: \(next.descriptors) and \(stale.descriptors)")
        #expect(!stale.send("injected\n"), "a write to a killed shell went somewhere")
        var stolen: [UInt8] = []
        #expect(stale.readOutput(into: &stolen) == .closed && stolen.isEmpty)
        #expect(next.send("its own\n"))
        var output: [UInt8] = []
        #expect(
            try await eventually {
                _ = next.readOutput(into: &output)
                return String(decoding: output, as: UTF8.self).hasSuffix("\n")
            })
        #expect(String(decoding: output, as: UTF8.self) == "next got: its own\n")
        await next.kill()
    }
}
