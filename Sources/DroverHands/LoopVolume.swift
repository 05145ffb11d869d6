import DroverCore
import Foundation
import Logging

/// A directory whose contents live on a small ext4 file system of their own: a sparse image file,
/// loop-mounted. It gives a sandbox two things a plain directory cannot.
///
/// - **A disk quota.** The image's size is the most the sandbox can write; past it a write fails
///   with "No space left on device" and the host's disk is untouched. This kernel has no project
///   quotas (no CONFIG_QUOTA), so a file system of its own is the way to cap one directory.
/// - **Neutral paths.** A bind mount shows in `/proc/self/mountinfo` as its path inside its file
///   system. From the host's disk that is the hands root (`/var/tmp/drover-hands/...`); from the
///   image it is `/workspace`, on `/dev/loopN`.
///
/// Layout: `directory/disk.img` and the mount point `directory/fs`, in a directory only the host
/// writes (root-owned, 0711 so that bubblewrap, started as nobody, can reach what it binds).
/// Opening, unmounting and removing take an exclusive `flock` on the directory, so that several
/// Drover processes sharing a hands root never race a mount. Where loop mounts cannot be made (not
/// root, no loop devices, a container), `directory/fs` is a plain directory: Drover says so once
/// and sandboxes run without a disk quota.
///
/// Mounting an image that is already attached reuses its loop device (util-linux does), so a
/// host-side unmount while a sandbox's namespace still holds the file system, then a new mount,
/// share one superblock rather than corrupt the image with two.
public struct LoopVolume: Sendable {
    public let directory: URL
    /// The image's size: the most its file system can hold.
    public let sizeBytes: Int

    public init(directory: URL, sizeBytes: Int) {
        self.directory = directory.standardizedFileURL
        self.sizeBytes = sizeBytes
    }

    public var image: URL { directory.appendingPathComponent("disk.img") }
    public var mountPoint: URL { directory.appendingPathComponent("fs") }

    /// Whether the volume exists on disk, mounted or not.
    public var exists: Bool { FileManager.default.fileExists(atPath: mountPoint.path) }

    /// Whether `mountPoint` is a mounted file system rather than a plain directory.
    public var isMounted: Bool {
        var inner = stat(), outer = stat()
        guard stat(mountPoint.path, &inner) == 0, stat(directory.path, &outer) == 0 else { return false }
        return inner.st_dev != outer.st_dev
    }

    public struct Failure: Error, CustomStringConvertible {
        public let step: String
        public let detail: String
        public var description: String { "\(step): \(detail)" }
    }

    /// Makes the volume if it does not exist and mounts it if it is not mounted; returns the mount
    /// point. A new volume falls back to a plain directory where loop mounts are unavailable. An
    /// existing image that cannot be mounted is an error: a plain directory in its place would
    /// show the session an empty workspace.
    @discardableResult
    public func open(isolation: isolated (any Actor)? = #isolation) async throws -> URL {
        try await locked { try await openLocked() }
        return mountPoint
    }

    /// Runs `body` with the volume mounted, and keeps it from being unmounted meanwhile (by this
    /// process or another sharing the hands root): a sandbox binds its directories in `body`.
    public func whileMounted<T>(isolation: isolated (any Actor)? = #isolation, _ body: (URL) async throws -> T) async throws -> T {
        try await locked {
            try await openLocked()
            return try await body(mountPoint)
        }
    }

    /// Unmounts the volume, keeping its image; a later `open` mounts it again. Something still
    /// using it (a file open on the host) leaves it mounted.
    public func unmount(isolation: isolated (any Actor)? = #isolation) async {
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        try? await locked { unmountLocked(lazily: false) }
    }

    /// Unmounts the volume and deletes it with everything in it.
    public func remove(isolation: isolated (any Actor)? = #isolation) async {
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        try? await locked {
            unmountLocked(lazily: true)
            // Never recurse into a file system still mounted: the sweep would empty it, not remove it.
            guard !isMounted else { return }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    private func openLocked(isolation: isolated (any Actor)? = #isolation) async throws {
        let manager = FileManager.default
        if isMounted { return }
        let hasImage = manager.fileExists(atPath: image.path)
        // A volume made as a plain directory (no loop devices then) stays one: an image mounted
        // over it would hide its files.
        if !hasImage && manager.fileExists(atPath: mountPoint.path) { return }
        if hasImage || LoopVolumeSupport.available {
            do {
                if !hasImage { try await makeImage() }
                try makeDirectory(mountPoint, mode: 0o711)
                try await Self.run(
                    LoopVolumeSupport.mount,
                    [
                        "-t", "ext4", "-o", "loop,nosuid,nodev,noatime,noinit_itable,discard",
                        image.path, mountPoint.path,
                    ], log: directory, step: "mounting \(image.path)")
            } catch {
                guard !hasImage else { throw error }
                // A new image could not be made or mounted: this host cannot (a container without
                // loop devices, say). This volume and every later one are plain directories.
                unlink(image.path)
                LoopVolumeSupport.disable(reason: "\(error)")
                try makeDirectory(mountPoint, mode: 0o711)
                return
            }
            // The file system's root is the host's; only the directories made in it are the sandbox's.
            chmod(mountPoint.path, 0o711)
        } else {
            try makeDirectory(mountPoint, mode: 0o711)
        }
    }

    private func makeImage(isolation: isolated (any Actor)? = #isolation) async throws {
        try makeDirectory(directory, mode: 0o711)
        let partial = directory.appendingPathComponent("disk.img.new")
        unlink(partial.path)
        let fd = Glibc.open(partial.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(step: "creating \(partial.path)", detail: String(cString: strerror(errno))) }
        let sized = ftruncate(fd, off_t(sizeBytes))
        let error = errno
        close(fd)
        guard sized == 0 else {
            unlink(partial.path)
            throw Failure(step: "sizing \(partial.path)", detail: String(cString: strerror(error)))
        }
        // Sparse, without a lazily zeroed inode table or journal: a new image costs a few hundred
        // KiB of disk, and grows only with what is written. A small journal keeps it consistent
        // across a host crash without reserving much.
        do {
            try await Self.run(
                LoopVolumeSupport.mkfs,
                [
                    "-q", "-F", "-t", "ext4", "-m", "0", "-J", "size=4",
                    "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
                    partial.path,
                ], log: directory, step: "formatting \(partial.path)")
        } catch {
            unlink(partial.path)
            throw error
        }
        guard rename(partial.path, image.path) == 0 else {
            throw Failure(step: "naming \(image.path)", detail: String(cString: strerror(errno)))
        }
    }

    private func unmountLocked(lazily: Bool) {
        guard isMounted else { return }
        if umount2(mountPoint.path, 0) != 0, lazily, errno == EBUSY {
            _ = umount2(mountPoint.path, Int32(MNT_DETACH))
        }
    }

    private func makeDirectory(_ url: URL, mode: mode_t) throws {
        if mkdir(url.path, mode) != 0 {
            guard errno == EEXIST else {
                if errno == ENOENT {
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    return try makeDirectory(url, mode: mode)
                }
                throw Failure(step: "creating \(url.path)", detail: String(cString: strerror(errno)))
            }
            return
        }
        chmod(url.path, mode)
    }

    /// Holds an exclusive `flock` on the directory for `body`; waits without blocking a thread.
    private func locked<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try makeDirectory(directory, mode: 0o711)
        let fd = Glibc.open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw Failure(step: "opening \(directory.path)", detail: String(cString: strerror(errno))) }
        defer { close(fd) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw Failure(step: "locking \(directory.path)", detail: String(cString: strerror(errno)))
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        return try await body()
    }

    /// Runs one of Drover's own tools (mkfs, mount) with fixed arguments and no environment but a
    /// PATH; its output goes to a log in the host-only directory, quoted in the error if it fails.
    static func run(_ executable: String, _ arguments: [String], log directory: URL, step: String) async throws {
        let log = directory.appendingPathComponent(".tool-\(Identifier.make(prefix: "l").suffix(8)).log").path
        defer { unlink(log) }
        let child = try ChildProcess(
            executable: executable, arguments: arguments,
            environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"], outputPath: log)
        let code = await child.exitCodeWhenDone(polling: .milliseconds(1))
        guard code == 0 else {
            let output = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(step: step, detail: "\(executable) exited with \(code)\(output.isEmpty ? "" : ": " + String(output.suffix(600)))")
        }
    }
}

/// Whether this process can make loop-mounted volumes: as root, with mkfs.ext4, mount and loop
/// devices. The first failure to mount a new image turns it off for the process, with one warning.
public enum LoopVolumeSupport {
    static let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/sbin/mkfs.ext4"
    static let mount = ["/usr/bin/mount", "/bin/mount"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/bin/mount"
    private static let logger = Logger(label: "drover.sandbox")
    private static let disabled = Locked<String?>(initialReason())

    /// Why volumes are plain directories in this process, or nil when they are images.
    public static var unavailableReason: String? { disabled.value }
    static var available: Bool { disabled.value == nil }

    private static func initialReason() -> String? {
        let environment = ProcessInfo.processInfo.environment["DROVER_SANDBOX_DISK"]?.trimmingCharacters(in: .whitespaces).lowercased()
        if environment == "off" { return "DROVER_SANDBOX_DISK=off" }
        if getuid() != 0 { return "Drover is not running as root, and only root can mount a workspace image" }
        for tool in [mkfs, mount] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (apt-get install -y e2fsprogs mount)"
        }
        if !FileManager.default.fileExists(atPath: "/dev/loop-control") { return "this host has no loop devices (/dev/loop-control)" }
        return nil
    }

    static func disable(reason: String) {
        disabled.withLock { if $0 == nil { $0 = reason } }
        reportOnce()
    }

    private static let reported = Locked(false)

    /// One warning per process that workspaces have no disk quota, and why.
    static func reportOnce() {
        guard let reason = unavailableReason, reason != "DROVER_SANDBOX_DISK=off",
            reported.withLock({ done in
                defer { done = true }
                return !done
            })
        else { return }
        logger.warning("sandbox workspaces have no disk quota and show their host path (\(reason)); they are plain directories of the hands root")
    }
}
