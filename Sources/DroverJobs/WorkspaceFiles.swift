import DroverCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Copies files for a session's workspace before its first turn, and out of it afterwards.
enum WorkspaceFiles {
    /// Stages the item's files in `staging` (host-only; see `HandsLayout.staging`): the sandbox
    /// pool copies them into /workspace, owned by the sandbox's user, when the sandbox starts.
    static func seed(_ staging: URL, with files: [(source: URL, destination: String)]) throws {
        let manager = FileManager.default
        try manager.createDirectory(at: staging, withIntermediateDirectories: true)
        for (source, destination) in files {
            let target = staging.appendingPathComponent(destination).standardizedFileURL
            try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
            try manager.copyItem(at: source, to: target)
        }
    }

    /// Copies `from` (relative to the workspace) to `to` (relative to `destinationRoot`).
    /// Returns false when the agent did not produce the file. The workspace is the sandbox's, so
    /// the copy follows no link the agent planted and reads through descriptors only
    /// (`SandboxWrittenFiles`); `to` must stay inside `destinationRoot`.
    static func collect(from workspace: URL, path: String, to destinationRoot: URL, as destination: String) throws -> Bool {
        let manager = FileManager.default
        let root = destinationRoot.standardizedFileURL
        let target = root.appendingPathComponent(destination).standardizedFileURL
        guard target.path.hasPrefix(root.path + "/") else {
            throw SandboxWrittenFiles.Refused(path: destination, reason: "collect.to leaves the report directory")
        }
        if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
        return try SandboxWrittenFiles(root: workspace).copy(path, to: target)
    }
}
