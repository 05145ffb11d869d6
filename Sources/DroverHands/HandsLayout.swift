import DroverCore
import Foundation

/// Where a session's sandbox files live under the hands root. The one place these paths are
/// computed: the pool, the API's file resources and the batch runner all go through it.
///
/// ```
/// workspaces/SESSION/            host-only (root, 0711)
///     disk.img                   the session's volume (see LoopVolume): its size is the quota
///     fs/                        the volume's mount point
///         workspace/             the sandbox's /workspace
///         shell/                 the sandbox's /run/shell: its saved directory and exports
///     staged/                    the session's starting files, from the file store, on their way in (host-only)
/// layers/fs/pip-KEY/             package layers, on a volume of their own
/// exports/                       files a turn sends back to the file store, on their way out (host-only)
/// ```
public struct HandsLayout: Sendable {
    public let root: URL
    /// The size of each new session volume.
    public let diskBytes: Int

    public init(root: URL, diskBytes: Int = SandboxLimits().diskBytes) {
        self.root = root.standardizedFileURL
        self.diskBytes = diskBytes
    }

    /// The volume holding a session's (or a warm sandbox's) workspace and shell state.
    public func volume(_ name: String) -> LoopVolume {
        LoopVolume(directory: root.appendingPathComponent("workspaces").appendingPathComponent(name), sizeBytes: diskBytes)
    }

    public func workspace(_ name: String) -> URL {
        volume(name).mountPoint.appendingPathComponent("workspace")
    }

    public func shellState(_ name: String) -> URL {
        volume(name).mountPoint.appendingPathComponent("shell")
    }

    /// Holds the package layers' volume (see `PackageLayers`).
    public var layersDirectory: URL { root.appendingPathComponent("layers") }

    /// The session's starting files (a job's per-item files, the API's file resources), written
    /// from the file store as its workspace is built on this host. Host-only: the pool copies
    /// them in when the sandbox starts.
    public func staging(_ session: String) -> URL {
        root.appendingPathComponent("workspaces").appendingPathComponent(session).appendingPathComponent("staged")
    }

    /// Moves a session's directories from the layout before volumes (`workspaces/SESSION` as the
    /// workspace itself, `shells/SESSION` beside it) into a plain volume, so that a session
    /// started before an upgrade keeps its files. Only renames: nothing in the agent's tree is
    /// read, copied or followed. Such a volume stays a plain directory, with no quota.
    func migrateLegacyDirectories(of session: String) throws {
        let manager = FileManager.default
        let legacyShell = root.appendingPathComponent("shells").appendingPathComponent(session)
        let directory = volume(session).directory
        var status = stat()
        // Only a sandbox ever made `shells/SESSION`, and only the old layout had it.
        guard lstat(legacyShell.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR,
            lstat(directory.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR,
            !manager.fileExists(atPath: volume(session).mountPoint.path)
        else { return }
        let moved = root.appendingPathComponent("workspaces").appendingPathComponent(".legacy-\(session)")
        try manager.moveItem(at: directory, to: moved)
        try manager.createDirectory(at: volume(session).mountPoint, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        chmod(directory.path, 0o711)
        try manager.moveItem(at: moved, to: workspace(session))
        try manager.moveItem(at: legacyShell, to: shellState(session))
    }

    /// Runs `body` with the session's workspace mounted (mounting it again after a reboot or an
    /// eviction), and with no unmount meanwhile. A session that never had a sandbox has no
    /// workspace: `body` gets a path that does not exist.
    public func withWorkspace<T>(_ session: String, isolation: isolated (any Actor)? = #isolation, _ body: (URL) throws -> T) async throws -> T {
        try migrateLegacyDirectories(of: session)
        let volume = volume(session)
        guard volume.exists else { return try body(workspace(session)) }
        return try await volume.whileMounted { _ in try body(workspace(session)) }
    }

    /// Unmounts every volume under the root (sessions', warm sandboxes' and the package layers'),
    /// keeping their images: for tearing a hands root down once no Drover process uses it.
    public func unmountAll() async {
        let workspaces = root.appendingPathComponent("workspaces")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: workspaces.path)) ?? [] {
            await volume(name).unmount()
        }
        await LoopVolume(directory: layersDirectory, sizeBytes: 0).unmount()
    }

    /// Copies the session's staged files into the workspace `into` (the session's own, or a warm
    /// sandbox's about to become its own) and deletes them. The staged tree was written by the
    /// host alone; the workspace is new, and no agent has run in it, so nothing there is a link
    /// an agent planted.
    func moveStagedFiles(of session: String, into workspace: URL) throws {
        let staged = staging(session)
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: staged.path) else { return }
        for name in names {
            let target = workspace.appendingPathComponent(name)
            if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
            try manager.copyItem(at: staged.appendingPathComponent(name), to: target)
            if getuid() == 0 { Self.giveToSandbox(target) }
        }
        try manager.removeItem(at: staged)
    }

    /// Hands a host-made tree to the sandbox's user, never following a link.
    static func giveToSandbox(_ tree: URL) {
        let user = Sandbox.unprivileged
        lchown(tree.path, user, user)
        let enumerator = FileManager.default.enumerator(atPath: tree.path)
        while let relative = enumerator?.nextObject() as? String {
            lchown(tree.path + "/" + relative, user, user)
        }
    }
}
