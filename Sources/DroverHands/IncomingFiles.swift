import DroverCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Files added to a session that already has a workspace (`sessions.resources.add` with a file).
/// The API stages each under `incoming/` (host-only); the session's next tool call puts it in
/// place through its running sandbox.
///
/// The host never writes into the workspace by path: an agent may have made any path there a
/// link to anywhere, and may be changing it while the host looks. The host creates one new file
/// in the workspace's top directory with `O_CREAT | O_EXCL | O_NOFOLLOW` on a descriptor of that
/// directory, which no link can redirect, and the sandbox's own shell moves it where it belongs,
/// with the sandbox's rights, inside the sandbox's view.
public struct IncomingFiles: Sendable {
    public let layout: HandsLayout

    public init(layout: HandsLayout) {
        self.layout = layout
    }

    /// `workspaces/SESSION/incoming/ID/{data,target}`: the bytes and the path under /workspace.
    func directory(_ session: String) -> URL {
        layout.root.appendingPathComponent("workspaces").appendingPathComponent(session).appendingPathComponent("incoming")
    }

    /// Stages a copy of `source` for `relativePath` under /workspace. Written under a dot name and
    /// renamed, so a worker never delivers half a file.
    public func stage(_ source: URL, relativePath: String, resourceID: String, session: String) throws {
        let manager = FileManager.default
        let root = directory(session)
        try manager.createDirectory(at: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let partial = root.appendingPathComponent(".partial-\(resourceID)")
        try? manager.removeItem(at: partial)
        try manager.createDirectory(at: partial, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try manager.copyItem(at: source, to: partial.appendingPathComponent("data"))
        try Data(relativePath.utf8).write(to: partial.appendingPathComponent("target"))
        try manager.moveItem(at: partial, to: root.appendingPathComponent(resourceID))
    }

    /// Forgets a file not delivered yet (its resource was removed). Returns whether one was waiting.
    @discardableResult
    public func discard(resourceID: String, session: String) -> Bool {
        (try? FileManager.default.removeItem(at: directory(session).appendingPathComponent(resourceID))) != nil
    }

    /// The ids waiting for the session, oldest first.
    func waiting(_ session: String) -> [String] {
        let root = directory(session)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        // Each entry's time read once, not at every comparison.
        let staged = names.filter { !$0.hasPrefix(".") }.map { name in
            (
                name,
                (try? FileManager.default.attributesOfItem(atPath: root.appendingPathComponent(name).path)[.modificationDate] as? Date)
                    ?? .distantPast
            )
        }
        return staged.sorted { $0.1 < $1.1 }.map(\.0)
    }

    /// Puts every waiting file in place through `sandbox`, which must be the session's, started.
    /// Returns what could not be delivered, one line each; those are dropped, not retried.
    func deliver(_ session: SessionID, into sandbox: Sandbox) async -> [String] {
        var failures: [String] = []
        for id in waiting(session.rawValue) {
            let entry = directory(session.rawValue).appendingPathComponent(id)
            defer { try? FileManager.default.removeItem(at: entry) }
            guard let target = try? String(contentsOf: entry.appendingPathComponent("target"), encoding: .utf8), !target.isEmpty else { continue }
            do {
                let name = try placeInTopDirectory(entry.appendingPathComponent("data"), workspace: layout.workspace(session.rawValue))
                let run = try await sandbox.run(
                    """
                    mkdir -p -- "$(dirname -- \(AgentToolset.quote(target)))" && mv -f -- \(AgentToolset.quote(name)) \(AgentToolset.quote(target))
                    """)
                if run.exitCode != 0 {
                    _ = try? await sandbox.run("rm -f -- \(AgentToolset.quote(name))")
                    failures.append("/workspace/\(target): \(run.output.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
            } catch {
                failures.append("/workspace/\(target): \(error)")
            }
        }
        return failures
    }

    /// Copies `source` (host-only) to a new file in the workspace's top directory and returns its
    /// name there. Nothing in the workspace is followed: the directory is opened as itself, and
    /// the file is created, never opened if it exists.
    private func placeInTopDirectory(_ source: URL, workspace: URL) throws -> String {
        let directory = open(workspace.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { throw IncomingFileError("cannot open the workspace: \(String(cString: strerror(errno)))") }
        defer { close(directory) }
        let input = open(source.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else { throw IncomingFileError("cannot read the staged file: \(String(cString: strerror(errno)))") }
        defer { close(input) }
        for _ in 0..<8 {
            let name = ".drover-incoming-\(UInt64.random(in: 0...UInt64.max))"
            let output = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if output < 0 {
                if errno == EEXIST { continue }
                throw IncomingFileError("cannot create a file in /workspace: \(String(cString: strerror(errno)))")
            }
            defer { close(output) }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = read(input, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw IncomingFileError("cannot read the staged file: \(String(cString: strerror(errno)))") }
                if count == 0 { break }
                var written = 0
                while written < count {
                    let step = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
                    if step < 0 && errno == EINTR { continue }
                    guard step > 0 else {
                        let reason = String(cString: strerror(errno))
                        unlinkat(directory, name, 0)
                        throw IncomingFileError("cannot write into /workspace: \(reason)")
                    }
                    written += step
                }
            }
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
