import DroverCore
import DroverFileStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which workspace files a job wants back, and copying them out into the report folder.
enum WorkspaceFiles {
    /// The paths, relative to /workspace, an item's session sends back when its turn ends: the
    /// output file and each `collect.from`. A path whose placeholder does not render is left
    /// out here; collecting it reports that.
    static func wanted(by spec: JobSpec, item: JobItem) -> [String] {
        var paths: [String] = []
        if spec.output.source == .file, let file = spec.output.file { paths.append(WorkspacePath.normalized(file)) }
        for copy in spec.collect {
            if let from = try? PromptTemplate.render(copy.from, fields: item.fields) { paths.append(WorkspacePath.normalized(from)) }
        }
        var seen = Set<String>()
        return paths.filter { !$0.isEmpty && seen.insert($0).inserted }
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
