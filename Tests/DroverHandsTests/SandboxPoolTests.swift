import DroverCore
import DroverHands
import DroverTesting
import Foundation
import Testing

private func poolRoot() -> URL {
    scratchDirectory("pool")
}

private func settings(warm: Int = 1, capacity: Int = 8, ttl: Duration = .seconds(600)) -> SandboxPoolSettings {
    var settings = SandboxPoolSettings()
    settings.warmPerConfiguration = warm
    settings.capacity = capacity
    settings.idleTimeToLive = ttl
    settings.limits.wallClock = .seconds(20)
    return settings
}

@Suite("Sandbox pool", .serialized, .enabled(if: Sandbox.bubblewrap != nil, "needs bubblewrap"))
struct SandboxPoolTests {
    @Test("a warm checkout hands over a running sandbox on workspaces/SESSION, keeps files put there first, and refills")
    func warmCheckout() async throws {
        let root = poolRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(warm: 2))
        await pool.prewarm()
        #expect(try await eventually { await pool.stats.warm == 2 })
        let warmPids = Set(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("workspaces").path))
        #expect(warmPids.count == 2 && warmPids.allSatisfy { $0.hasPrefix(".warm-") })

        let session = SessionID.make()
        // A job stages a per-item file for the session's workspace before its first turn.
        let workspace = pool.workspace(session)
        let staging = pool.layout.staging(session.rawValue)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try "print('submitted')\n".write(to: staging.appendingPathComponent("submission.py"), atomically: true, encoding: .utf8)

        // How fast is measured by `drover bench hands`. That the sandbox was the warm one is
        // checked below: its pid does not change.
        let sandbox = try await pool.checkout(session)
        let pid = try #require(await sandbox.pid, "the warm sandbox is not running")
        #expect(await sandbox.workspace.path == workspace.standardizedFileURL.path)
        let run = try await sandbox.run("python3 submission.py && echo made > made.txt && pwd")
        #expect(run.output == "submitted\n/workspace\n", "\(run.output)")
        #expect(await sandbox.pid == pid, "the call started a new sandbox instead of using the warm one")
        #expect(try String(contentsOf: workspace.appendingPathComponent("made.txt"), encoding: .utf8) == "made\n")
        // The warm sandbox's volume became the session's; the staged copy is gone.
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("workspaces").path))
        #expect(names.contains(session.rawValue) && warmPids.subtracting(names).count == 1, "\(names)")
        #expect(!FileManager.default.fileExists(atPath: staging.path))

        #expect(try await eventually { await pool.stats.warm == 2 })
        let stats = await pool.stats
        #expect(stats.inUse == 1 && stats.provisionTime.count == 3)
        #expect((stats.provisionTime.percentile(50) ?? 0) > 0)
        await pool.shutdown()
        #expect(await sandbox.pid == nil)
    }

    @Test("a session's sandbox is sticky across turns: the same shell, functions and all")
    func sticky() async throws {
        let root = poolRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(warm: 0))
        let session = SessionID.make()
        let first = try await pool.checkout(session)
        _ = try await first.runInShell("greet() { echo \"hello $1\"; }; cd /tmp; counter=41")
        let second = try await pool.checkout(session)
        #expect(first === second)
        let run = try await second.runInShell("counter=$((counter + 1)); greet turn2; pwd; echo $counter")
        #expect(run.output == "hello turn2\n/tmp\n42\n", "\(run.output)")
        let other = try await pool.checkout(SessionID.make())
        #expect(other !== first)
        #expect(await pool.stats.inUse == 2)
        await pool.shutdown()
    }

    @Test("idle sandboxes are evicted after the time to live; the workspace and the shell's directory and exports survive")
    func idleEviction() async throws {
        let root = poolRoot()
        defer { Task { await removeHandsRoot(root) } }
        // A time to live far longer than a call and a sweep take even on a loaded machine.
        let pool = SandboxPool(root: root, settings: settings(warm: 0, ttl: .seconds(2)))
        let session = SessionID.make()
        let sandbox = try await pool.checkout(session)
        _ = try await sandbox.runInShell("mkdir -p work && cd work && export MARK=kept && echo data > file.txt")
        await pool.evictIdle()
        #expect(await pool.stats.inUse == 1, "evicted before its time to live")
        try await Task.sleep(for: .milliseconds(2200))
        await pool.evictIdle()
        // The pool's own sweeper may be the one evicting it, still ending its processes: then
        // this sweep leaves it to that one.
        let deadline = ContinuousClock.now + .seconds(30)
        while await pool.stats.evicted == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let stats = await pool.stats
        #expect(stats.inUse == 0 && stats.evicted == 1, "\(stats)")
        while await sandbox.pid != nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await sandbox.pid == nil, "the evicted sandbox still runs")
        let again = try await pool.checkout(session)
        #expect(again !== sandbox)
        let run = try await again.runInShell("pwd; echo $MARK; cat file.txt")
        #expect(run.output == "/workspace/work\nkept\ndata\n", "\(run.output)")
        await pool.shutdown()
    }

    @Test("the capacity evicts the least recently used idle sandbox, and refuses when every sandbox is busy")
    func capacity() async throws {
        let root = poolRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(warm: 0, capacity: 2))
        let (a, b, c) = (SessionID.make(), SessionID.make(), SessionID.make())
        let sandboxA = try await pool.checkout(a)
        _ = try await sandboxA.run("true")
        let sandboxB = try await pool.checkout(b)
        _ = try await sandboxB.run("true")
        _ = try await pool.checkout(a)  // a is now the most recently used
        _ = try await pool.checkout(c)
        var stats = await pool.stats
        #expect(stats.inUse == 2 && stats.evicted == 1)
        #expect(await sandboxB.pid == nil, "the least recently used sandbox (b) should have gone")
        #expect(await sandboxA.pid != nil)

        // Both live sandboxes busy: a third session is refused with a clear error.
        let sandboxC = try await pool.checkout(c)
        let busyA = Task { try await sandboxA.run("sleep 3") }
        let busyC = Task { try await sandboxC.run("sleep 3") }
        #expect(
            try await eventually {
                let (busyA, busyC) = (await sandboxA.isBusy, await sandboxC.isBusy)
                return busyA && busyC
            })
        await #expect(throws: SandboxPool.Full.self) { _ = try await pool.checkout(SessionID.make()) }
        busyA.cancel()
        busyC.cancel()
        _ = await (busyA.result, busyC.result)
        stats = await pool.stats
        #expect(stats.inUse == 2)
        await pool.shutdown()
    }

    @Test("concurrent checkouts of one session (prepare at wake and the first tool call) share one sandbox")
    func concurrentCheckout() async throws {
        let root = poolRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(warm: 0))
        let session = SessionID.make()
        async let first = pool.checkout(session)
        async let second = pool.checkout(session)
        let (x, y) = try await (first, second)
        #expect(x === y)
        let stats = await pool.stats
        #expect(stats.inUse == 1 && stats.provisionTime.count == 1)
        await pool.shutdown()
    }

    @Test("warm directories left by a dead worker are removed; those of live processes stay")
    func abandonedWarmDirectories() async throws {
        let root = poolRoot()
        defer { Task { await removeHandsRoot(root) } }
        var dead: pid_t = 999_999
        while kill(dead, 0) == 0 { dead -= 1 }
        let abandoned = root.appendingPathComponent("workspaces/.warm-\(dead)-abc")
        let alive = root.appendingPathComponent("workspaces/.warm-1-abc")
        for directory in [abandoned, alive] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        let pool = SandboxPool(root: root, settings: settings(warm: 0))
        await pool.prewarm()
        #expect(!FileManager.default.fileExists(atPath: abandoned.path))
        #expect(FileManager.default.fileExists(atPath: alive.path))
        await pool.shutdown()
    }
}
