import DroverCore
import DroverTesting
import Foundation
import Testing

@testable import DroverHands

/// Issue 12: memory, processes and CPU held per sandbox by a cgroup. rlimits counted per
/// process (memory) or per user (processes, and every sandbox is nobody), so one sandbox could
/// take the host's memory in several processes, or every other sandbox's processes.
@Suite("Sandbox cgroup limits", .serialized)
struct SandboxCgroupTests {
    private struct Fixture {
        let root: URL
        let limits: SandboxLimits

        init(_ adjust: (inout SandboxLimits) -> Void = { _ in }) throws {
            root = scratchDirectory("cgroup")
            var limits = SandboxLimits()
            limits.wallClock = .seconds(60)
            adjust(&limits)
            self.limits = limits
        }

        func sandbox(_ name: String) throws -> Sandbox {
            try Sandbox(workspace: root.appendingPathComponent(name), limits: limits)
        }

        func cleanUp(_ sandboxes: Sandbox...) async {
            for sandbox in sandboxes { await sandbox.close() }
            try? FileManager.default.removeItem(at: root)
        }
    }

    @Test("as root, this host gives sandboxes cgroups (CI runs as root on cgroup v1)")
    func available() throws {
        guard getuid() == 0 else { return }
        guard case .available = CgroupSupport.current else {
            Issue.record("no cgroups: \(CgroupSupport.current)")
            return
        }
        let sandbox = try Fixture().sandbox("w")
        #expect(sandbox.cgroup != nil)
    }

    @Test("the memory limit holds for the sandbox as a whole: two processes of 300 MiB under 400 MiB, and one is killed")
    func memoryAcrossProcesses() async throws {
        let fixture = try Fixture { $0.memoryBytes = 400 << 20 }
        let sandbox = try fixture.sandbox("w")
        guard sandbox.cgroup != nil else { return }
        // Each process alone is under the limit: an address-space rlimit lets both live.
        let result = try await sandbox.run(
            """
            python3 -c 'import time; x = bytearray(300 << 20); time.sleep(3)' & first=$!
            python3 -c 'import time; x = bytearray(300 << 20); time.sleep(3)' & second=$!
            wait $first; a=$?; wait $second; b=$?; echo "statuses $a $b"
            """)
        await fixture.cleanUp(sandbox)
        #expect(result.output.contains("137"), "\(result.output)")
        #expect(result.output.contains("killed: memory limit 400 MiB"), "\(result.output)")
    }

    @Test("the sandbox's /tmp counts against its memory")
    func tmpCountsAsMemory() async throws {
        let fixture = try Fixture {
            $0.memoryBytes = 160 << 20
            $0.tmpBytes = 256 << 20
        }
        let sandbox = try fixture.sandbox("w")
        guard sandbox.cgroup != nil else { return }
        let result = try await sandbox.run("head -c 220M /dev/zero > /tmp/fill; echo status=$?; stat -c 'size=%s' /tmp/fill")
        await fixture.cleanUp(sandbox)
        #expect(!result.output.contains("size=230686720"), "/tmp took 220 MiB past a 160 MiB memory limit: \(result.output)")
        #expect(result.output.contains("killed: memory limit 160 MiB"), "\(result.output)")
    }

    @Test("one sandbox holding its process limit leaves another sandbox free to start processes")
    func processesPerSandbox() async throws {
        let fixture = try Fixture { $0.processes = 64 }
        let hog = try fixture.sandbox("hog")
        let neighbour = try fixture.sandbox("neighbour")
        guard hog.cgroup != nil else { return }
        // The sleepers outlive the call and keep the limit taken. Python, because bash retries a
        // refused fork for seconds.
        let held = try await hog.run(
            """
            python3 -c '
            import os, time
            for _ in range(100):
                try:
                    if os.fork() == 0:
                        time.sleep(600); os._exit(0)
                except OSError:
                    break
            print("held")'
            """)
        #expect(held.output.contains("process limit 64 reached"), "\(held.output)")
        let forked = try await neighbour.run("for i in $(seq 40); do sleep 0 & done; wait; echo forked-fine")
        await fixture.cleanUp(hog, neighbour)
        #expect(forked.output.contains("forked-fine") && !forked.output.contains("fork:"), "\(forked.output)")
        #expect(forked.exitCode == 0)
    }

    @Test("a fork bomb and a memory bomb in one sandbox: a concurrent session's calls all complete")
    func noisyNeighbour() async throws {
        let fixture = try Fixture {
            $0.memoryBytes = 512 << 20
            $0.wallClock = .seconds(20)
        }
        let bomb = try fixture.sandbox("bomb")
        let quiet = try fixture.sandbox("quiet")
        guard bomb.cgroup != nil else { return }
        try await quiet.start()
        let bombing = Task {
            try await bomb.run(
                """
                python3 -c 'x = bytearray(2 << 30)' 2>/dev/null &
                bomb() { bomb | bomb & }; bomb; sleep 30
                """, wallClock: .seconds(8))
        }
        // Timings belong in `drover bench hands`; here every call must answer, and correctly.
        for index in 0..<20 {
            let result = try await quiet.run("echo call-\(index) $(( \(index) * 2 ))")
            #expect(result.exitCode == 0 && result.output.contains("call-\(index) \(index * 2)"), "\(result.output)")
        }
        let bombed = try await bombing.value
        await fixture.cleanUp(bomb, quiet)
        #expect(bombed.timedOut)
        #expect(bombed.output.contains("process limit"), "\(bombed.output)")
    }

    @Test("a call stopped at its wall clock leaves nothing running in the sandbox's cgroup")
    func timeoutEmptiesTheCgroup() async throws {
        let fixture = try Fixture { $0.wallClock = .seconds(1) }
        let sandbox = try fixture.sandbox("w")
        guard let cgroup = sandbox.cgroup else { return }
        let result = try await sandbox.run("setsid sleep 600 & nohup sleep 600 & while :; do :; done")
        #expect(result.timedOut)
        func members() -> [Substring] {
            cgroup.processFiles.flatMap { file in ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n") }
        }
        // Killed processes stay listed while the kernel frees them: a generous deadline.
        let deadline = ContinuousClock.now + .seconds(20)
        while !members().isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(FileManager.default.fileExists(atPath: cgroup.processFiles[0]))
        #expect(members().isEmpty, "still in the cgroup: \(members())")
        await fixture.cleanUp(sandbox)
    }

    @Test("where no cgroup can be made, Drover says why and falls back to rlimits")
    func fallback() throws {
        let empty = scratchDirectory("nocgroup")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(CgroupSupport.detect(root: empty, membership: "0::/\n", environment: [:]) == .unavailable(reason: "no pids cgroup is mounted"))
        #expect(
            CgroupSupport.detect(root: empty, membership: "4:pids:/\n", environment: [:])
                == .unavailable(reason: "the pids cgroup is not under \(empty.path)"))
        #expect(
            CgroupSupport.detect(membership: "0::/\n", environment: ["DROVER_SANDBOX_CGROUPS": "off"])
                == .unavailable(reason: "DROVER_SANDBOX_CGROUPS=off"))
    }

    @Test("limits from the environment, and a bad one named with its fix")
    func limitsFromEnvironment() throws {
        let limits = try SandboxLimits.fromEnvironment([
            "DROVER_SANDBOX_MEMORY": "1GiB", "DROVER_SANDBOX_PIDS": "128", "DROVER_SANDBOX_CPUS": "0.5", "DROVER_SANDBOX_TMP": "64m",
        ])
        #expect(limits.memoryBytes == 1 << 30 && limits.processes == 128 && limits.cpus == 0.5 && limits.tmpBytes == 64 << 20)
        for (key, value) in [
            ("DROVER_SANDBOX_MEMORY", "lots"), ("DROVER_SANDBOX_MEMORY", "99999999999999999999999"), ("DROVER_SANDBOX_PIDS", "-1"),
            ("DROVER_SANDBOX_CPUS", "nan"), ("DROVER_SANDBOX_TMP", "9TiB"),
        ] {
            #expect {
                try SandboxLimits.fromEnvironment([key: value])
            } throws: { error in
                (error as? FieldError)?.field == key && "\(error)".contains("set it")
            }
        }
    }
}
