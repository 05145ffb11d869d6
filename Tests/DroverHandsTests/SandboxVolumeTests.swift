import DroverCore
import DroverHands
import DroverTesting
import Foundation
import Testing

private func volumeRoot() -> URL {
    scratchDirectory("volume")
}

private func settings(disk: Int) -> SandboxPoolSettings {
    var settings = SandboxPoolSettings()
    settings.warmPerConfiguration = 0
    settings.limits.wallClock = .seconds(60)
    settings.limits.diskBytes = disk
    return settings
}

/// Bytes of host disk a file really takes (it is sparse).
private func allocated(_ url: URL) -> Int {
    var status = stat()
    guard stat(url.path, &status) == 0 else { return -1 }
    return Int(status.st_blocks) * 512
}

/// Each session's /workspace and /run/shell live on a loop-mounted image of its own (see
/// LoopVolume): its size is the disk quota, and the sandbox's mountinfo names no host path.
@Suite(
    "Sandbox volumes", .serialized,
    .enabled(
        if: Sandbox.bubblewrap != nil && LoopVolumeSupport.unavailableReason == nil,
        "needs bubblewrap, root and loop devices"))
struct SandboxVolumeTests {
    @Test("a workspace holds no more than its quota, /run/shell included, and a full one leaves other sessions and the host alone")
    func quota() async throws {
        let root = volumeRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(disk: 32 << 20))
        let greedy = try await pool.checkout(SessionID.make())
        // 64 MiB into a 32 MiB workspace: the write fails inside the sandbox, not on the host.
        let flood = try await greedy.run(
            "head -c 67108864 /dev/zero 2>/tmp/err > big; echo status=$?; cat /tmp/err; echo size=$(du -m big | cut -f1)")
        #expect(flood.output.contains("No space left on device") && flood.output.contains("status=1"), "\(flood.output)")
        let written = flood.output.split(separator: "\n").first { $0.hasPrefix("size=") }.flatMap { Int($0.dropFirst(5)) } ?? .max
        #expect(written <= 32, "the workspace took \(written) MiB with a 32 MiB quota")
        #expect(flood.output.contains("[drover: the workspace is full"), "\(flood.output)")
        // /run/shell is on the same volume: it cannot be used to get around the quota.
        let shell = try await greedy.run("head -c 1048576 /dev/zero 2>&1 >/run/shell/more; echo status=$?")
        #expect(shell.output.contains("No space left on device"), "\(shell.output)")
        // The image is sparse: on the host it takes what was written, never more than its size.
        let image = pool.layout.volume(try #require(await sessionName(of: greedy, in: pool))).image
        #expect(allocated(image) <= 40 << 20, "the image takes \(allocated(image)) bytes of host disk")

        // Freeing space makes the workspace usable again, and another session was never affected.
        let freed = try await greedy.run("rm big /run/shell/more && head -c 1048576 /dev/zero > small && echo ok")
        #expect(freed.output == "ok\n", "\(freed.output)")
        let other = try await pool.checkout(SessionID.make())
        let fine = try await other.run("head -c 8388608 /dev/zero > data && du -m data | cut -f1")
        #expect(fine.output == "8\n", "\(fine.output)")
        await pool.shutdown()
    }

    @Test("the sandbox's mountinfo shows /workspace and /run/shell on a loop device, never the hands root's host path")
    func neutralPaths() async throws {
        let root = volumeRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(disk: 64 << 20))
        let sandbox = try await pool.checkout(SessionID.make())
        let mounts = try await sandbox.run("cat /proc/self/mountinfo")
        #expect(mounts.exitCode == 0)
        #expect(!mounts.output.contains(root.path) && !mounts.output.contains("drover-volume-"), "\(mounts.output)")
        let lines = mounts.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        // Field 4 is the mount's root inside its file system, field 5 where it is mounted.
        let workspace = try #require(lines.first { $0.count > 4 && $0[4] == "/workspace" })
        let shell = try #require(lines.first { $0.count > 4 && $0[4] == "/run/shell" })
        #expect(workspace[3] == "/workspace" && shell[3] == "/shell", "\(workspace) \(shell)")
        #expect(workspace.contains { $0.hasPrefix("/dev/loop") }, "\(workspace)")
        await pool.shutdown()
    }

    @Test("an evicted session's volume is unmounted; its files come back with its next sandbox and to host-side reads")
    func unmountAndReturn() async throws {
        let root = volumeRoot()
        defer { Task { await removeHandsRoot(root) } }
        let pool = SandboxPool(root: root, settings: settings(disk: 64 << 20))
        let session = SessionID.make()
        let first = try await pool.checkout(session)
        #expect(try await first.runInShell("echo kept > notes.txt && mkdir -p sub && cd sub && export MARK=1").exitCode == 0)
        let volume = pool.layout.volume(session.rawValue)
        #expect(volume.isMounted)
        await pool.release(session)
        #expect(!volume.isMounted, "a released session's volume stays mounted")
        #expect(!FileManager.default.fileExists(atPath: pool.workspace(session).appendingPathComponent("notes.txt").path))

        // A host-side read (a batch collecting outputs) mounts it again.
        let text = try await pool.layout.withWorkspace(session.rawValue) { workspace in
            try String(contentsOf: workspace.appendingPathComponent("notes.txt"), encoding: .utf8)
        }
        #expect(text == "kept\n")
        await volume.unmount()
        let second = try await pool.checkout(session)
        let back = try await second.runInShell("cat /workspace/notes.txt; pwd; echo MARK=$MARK")
        #expect(back.output == "kept\n/workspace/sub\nMARK=1\n", "\(back.output)")
        await pool.shutdown()
    }

    @Test("another worker's start unmounts a volume in use; the running sandbox keeps working and the host sees its writes on one file system")
    func sweepWhileInUse() async throws {
        let root = volumeRoot()
        defer { Task { await removeHandsRoot(root) } }
        let first = SandboxPool(root: root, settings: settings(disk: 64 << 20))
        let session = SessionID.make()
        let sandbox = try await first.checkout(session)
        #expect(try await sandbox.run("echo before > a.txt").exitCode == 0)
        let volume = first.layout.volume(session.rawValue)
        #expect(volume.isMounted)

        // A second worker on the same hands root (as after a crash) sweeps at its start.
        let second = SandboxPool(root: root, settings: settings(disk: 64 << 20))
        _ = try await second.checkout(SessionID.make())
        #expect(!volume.isMounted, "the start-up sweep left the volume mounted")
        let after = try await sandbox.run("echo after > b.txt && cat a.txt b.txt")
        #expect(after.output == "before\nafter\n", "\(after.output)")
        // Mounted again for the host: the same file system the sandbox writes (one loop device),
        // so a write after the remount shows on both sides.
        let seen = try await first.layout.withWorkspace(session.rawValue) { workspace in
            try String(contentsOf: workspace.appendingPathComponent("b.txt"), encoding: .utf8)
        }
        #expect(seen == "after\n")
        let inside = try await sandbox.run("echo later > c.txt && stat -c %d /workspace")
        let (later, device) = try await first.layout.withWorkspace(session.rawValue) { workspace in
            var status = stat()
            _ = stat(workspace.path, &status)
            return (try String(contentsOf: workspace.appendingPathComponent("c.txt"), encoding: .utf8), status.st_dev)
        }
        #expect(later == "later\n")
        // One file system, not a second mount of the image beside the sandbox's: both see one device.
        #expect(inside.output == "\(device)\n", "sandbox \(inside.output), host \(device)")
        await second.shutdown()
        await first.shutdown()
    }

    @Test("a session from before volumes (workspaces/SESSION and shells/SESSION) keeps its files and shell state")
    func legacyLayout() async throws {
        let root = volumeRoot()
        defer { Task { await removeHandsRoot(root) } }
        let session = SessionID.make()
        let old = root.appendingPathComponent("workspaces").appendingPathComponent(session.rawValue)
        let oldShell = root.appendingPathComponent("shells").appendingPathComponent(session.rawValue)
        try FileManager.default.createDirectory(at: old.appendingPathComponent("src"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: oldShell, withIntermediateDirectories: true)
        try "work\n".write(to: old.appendingPathComponent("src/notes.txt"), atomically: true, encoding: .utf8)
        try "/workspace/src\n".write(to: oldShell.appendingPathComponent("cwd"), atomically: true, encoding: .utf8)
        for path in [old.path, old.path + "/src", old.path + "/src/notes.txt", oldShell.path, oldShell.path + "/cwd"] {
            chown(path, 65534, 65534)
        }
        let pool = SandboxPool(root: root, settings: settings(disk: 64 << 20))
        let sandbox = try await pool.checkout(session)
        let run = try await sandbox.runInShell("pwd; cat notes.txt")
        #expect(run.output == "/workspace/src\nwork\n", "\(run.output)")
        #expect(!FileManager.default.fileExists(atPath: oldShell.path))
        await pool.shutdown()
    }

    @Test("a volume made as a plain directory stays one; an image that cannot be mounted is an error, never an empty workspace")
    func plainAndBroken() async throws {
        let root = volumeRoot()
        defer { Task { await removeHandsRoot(root) } }
        let plain = LoopVolume(directory: root.appendingPathComponent("plain"), sizeBytes: 16 << 20)
        try FileManager.default.createDirectory(at: plain.mountPoint.appendingPathComponent("workspace"), withIntermediateDirectories: true)
        try "old\n".write(to: plain.mountPoint.appendingPathComponent("workspace/file"), atomically: true, encoding: .utf8)
        try await plain.open()
        #expect(!plain.isMounted && !FileManager.default.fileExists(atPath: plain.image.path))
        #expect(try String(contentsOf: plain.mountPoint.appendingPathComponent("workspace/file"), encoding: .utf8) == "old\n")

        let broken = LoopVolume(directory: root.appendingPathComponent("broken"), sizeBytes: 16 << 20)
        try FileManager.default.createDirectory(at: broken.directory, withIntermediateDirectories: true)
        try Data("not a file system".utf8).write(to: broken.image)
        await #expect(throws: LoopVolume.Failure.self) { try await broken.open() }
        #expect(!broken.isMounted)
    }
}

/// The session a pool's sandbox belongs to, from its workspace path.
private func sessionName(of sandbox: Sandbox, in pool: SandboxPool) async -> String? {
    let workspace = await sandbox.workspace.path
    return workspace.split(separator: "/").dropLast(2).last.map(String.init)
}
