import DroverCore
import DroverFileStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Files added to a session that already has a workspace (`sessions.resources.add` with a file).
/// The API puts each in the file store (`SessionFiles.addIncoming`), which every host reaches;
/// the session's next tool call, on whichever worker, puts it in place through its running
/// sandbox.
///
/// The host never writes into the workspace by path: an agent may have made any path there a
/// link to anywhere, and may be changing it while the host looks. The host creates one new file
/// in the workspace's top directory with `O_CREAT | O_EXCL | O_NOFOLLOW` on a descriptor of that
/// directory, which no link can redirect, and the sandbox's own shell moves it where it belongs,
/// with the sandbox's rights, inside the sandbox's view.
public struct IncomingFiles: Sendable {
    public let layout: HandsLayout
    public let files: SessionFiles

    public init(layout: HandsLayout, files: SessionFiles) {
        self.layout = layout
        self.files = files
    }

    /// Puts every waiting file in place through `sandbox`, which must be the session's, started.
    /// Returns what could not be delivered, one line each; those are dropped, not retried. When
    /// the store cannot be read, nothing is dropped: the next call tries again.
    func deliver(_ session: SessionID, into sandbox: Sandbox) async -> [String] {
        let waiting: [SessionFiles.Incoming]
        do {
            waiting = try await files.incoming(session)
        } catch {
            return ["files added to the session could not be read from the file store: \(error)"]
        }
        var failures: [String] = []
        for entry in waiting {
            let target = entry.file.path
            do {
                let data = try await files.store.bytes(of: entry.file)
                let name = try placeInTopDirectory(data, executable: entry.file.executable, workspace: layout.workspace(session.rawValue))
                let run = try await sandbox.run(
                    """
                    mkdir -p -- "$(dirname -- \(AgentToolset.quote(target)))" && mv -f -- \(AgentToolset.quote(name)) \(AgentToolset.quote(target))
                    """)
                if run.exitCode != 0 {
                    _ = try? await sandbox.run("rm -f -- \(AgentToolset.quote(name))")
                    failures.append("/workspace/\(target): \(run.output.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
            } catch is CancellationError {
                // Left waiting: the call that delivers it next is not this cancelled one.
                return failures
            } catch {
                failures.append("/workspace/\(target): \(error)")
            }
            _ = try? await files.discardIncoming(session, resourceID: entry.resourceID)
        }
        return failures
    }

    /// Writes `data` to a new file in the workspace's top directory and returns its name there.
    /// Nothing in the workspace is followed: the directory is opened as itself, and the file is
    /// created, never opened if it exists.
    private func placeInTopDirectory(_ data: Data, executable: Bool, workspace: URL) throws -> String {
        let directory = open(workspace.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { throw IncomingFileError("cannot open the workspace: \(String(cString: strerror(errno)))") }
        defer { close(directory) }
        for _ in 0..<8 {
            let name = ".drover-incoming-\(UInt64.random(in: 0...UInt64.max))"
            let output = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if output < 0 {
                if errno == EEXIST { continue }
                throw IncomingFileError("cannot create a file in /workspace: \(String(cString: strerror(errno)))")
            }
            defer { close(output) }
            var written = 0
            while written < data.count {
                let step = data.withUnsafeBytes { write(output, $0.baseAddress! + written, data.count - written) }
                if step < 0 && errno == EINTR { continue }
                guard step > 0 else {
                    let reason = String(cString: strerror(errno))
                    unlinkat(directory, name, 0)
                    throw IncomingFileError("cannot write into /workspace: \(reason)")
                }
                written += step
            }
            if executable { fchmod(output, 0o755) }
            if getuid() == 0 { fchown(output, Sandbox.unprivileged, Sandbox.unprivileged) }
            return name
        }
        throw IncomingFileError("cannot find a free name in /workspace")
    }
}

struct IncomingFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
