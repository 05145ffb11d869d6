import DroverCore
import DroverFileStore
import Foundation

/// Sends files out of a session's workspace to the file store, for a job that reads them on
/// another host (its output file, `collect`). The workspace is the sandbox's, so it is read the
/// way every host-side read of it is (`SandboxWrittenFiles`: by descriptor, following no link)
/// into a directory only the host writes, and stored from there.
struct WorkspaceExports {
    let layout: HandsLayout
    let store: FileStore

    /// `exports/.ID`: host-only copies on their way to the store.
    var scratch: URL { layout.root.appendingPathComponent("exports") }

    /// One export per wanted path, in order: its files, nothing (the agent wrote none), or why
    /// it was refused.
    func export(_ wanted: [String], of session: SessionID) async -> [SessionFiles.Export] {
        let directory = scratch.appendingPathComponent(".\(session.rawValue)-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let limits = store.limits
        // Copied under the volume's lock (no unmount meanwhile); stored after, outside it. Each
        // copy is named by its position, never by the agent's path.
        let copied: [(path: String, local: URL, found: Result<Bool, Error>)]
        do {
            copied = try await layout.withWorkspace(session.rawValue) { workspace in
                let exists = FileManager.default.fileExists(atPath: workspace.path)
                let reader = SandboxWrittenFiles(root: workspace, maxBytes: limits.maxSessionBytes)
                return wanted.enumerated().map { index, path in
                    let local = directory.appendingPathComponent("\(index)")
                    return (path, local, exists ? Result { try reader.copy(path, to: local) } : .success(false))
                }
            }
        } catch {
            return wanted.map { SessionFiles.Export(path: $0, files: [], refused: "the workspace could not be read: \(error)") }
        }
        var exports: [SessionFiles.Export] = []
        for (path, local, found) in copied {
            switch found {
            case .success(false):
                exports.append(SessionFiles.Export(path: path, files: []))
            case .success(true):
                do {
                    exports.append(SessionFiles.Export(path: path, files: try await store.upload([(local, path)])))
                } catch {
                    exports.append(SessionFiles.Export(path: path, files: [], refused: "\(error)"))
                }
            case .failure(let error):
                exports.append(SessionFiles.Export(path: path, files: [], refused: "\(error)"))
            }
        }
        return exports
    }
}
