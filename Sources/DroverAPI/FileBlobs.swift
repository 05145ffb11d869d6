import DroverCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Uploaded files' bytes: `<root>/<workspace>/<file id>`, directories 0700 and files 0600.
/// Paths are built only from the workspace id and the server-made file id, never a filename.
struct FileBlobs: Sendable {
    let root: URL

    func url(workspace: String, id: String) -> URL {
        root.appendingPathComponent(Self.component(workspace)).appendingPathComponent(Self.component(id))
    }

    func write(_ data: Data, workspace: String, id: String) throws {
        let directory = root.appendingPathComponent(Self.component(workspace))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let target = url(workspace: workspace, id: id)
        // Created 0600 before any byte is written, so the content is never readable by others.
        guard FileManager.default.createFile(atPath: target.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw APIError(.internalServerError, "api_error", "cannot create \(target.path)")
        }
        let handle = try FileHandle(forWritingTo: target)
        defer { try? handle.close() }
        try handle.write(contentsOf: data)
    }

    func read(workspace: String, id: String) throws -> Data {
        try Data(contentsOf: url(workspace: workspace, id: id))
    }

    func remove(workspace: String, id: String) {
        try? FileManager.default.removeItem(at: url(workspace: workspace, id: id))
    }

    /// Ids are checked before they get here; this keeps a path component safe regardless.
    static func component(_ text: String) -> String {
        let safe =
            !text.isEmpty && text != "." && text != ".."
            && text.utf8.allSatisfy {
                ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 45 || $0 == 46
            }
        return safe ? text : "x" + text.utf8.lowercaseHex
    }
}
