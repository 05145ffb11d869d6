import DroverCore
import Foundation

/// One file of a session's workspace as the file store holds it: where it goes under
/// /workspace, and the SHA-256 and size of its bytes, which every reader checks.
public struct StoredFile: Codable, Sendable, Equatable, Hashable {
    /// Relative to /workspace, checked by `WorkspacePath`.
    public let path: String
    /// Lower-case hex SHA-256 of the bytes: the blob's key, and its checksum.
    public let sha256: String
    public let size: Int
    /// Kept for scripts a job ships (a course's grader), which must stay runnable.
    public let executable: Bool

    public init(path: String, sha256: String, size: Int, executable: Bool) {
        self.path = path
        self.sha256 = sha256
        self.size = size
        self.executable = executable
    }

    /// The same bytes at another path.
    public func moved(to path: String) -> StoredFile {
        StoredFile(path: path, sha256: sha256, size: size, executable: executable)
    }
}

/// A path relative to /workspace that is safe to join to a host directory: no `..`, no empty
/// or `.` part, not absolute, no NUL, at most 1024 bytes. Manifests come from Redis, which no
/// sandbox reaches, but a host-side write by path is checked anyway.
public enum WorkspacePath {
    public struct Invalid: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "'\(path.prefix(200))' is not a path inside /workspace" }
    }

    /// `./a//b/` as `a/b`: the one form a path is stored and looked up in.
    public static func normalized(_ path: String) -> String {
        path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    public static func check(_ path: String) throws(Invalid) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, path.utf8.count <= 1024, !path.contains("\0"), !path.hasPrefix("/"),
            parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." })
        else { throw Invalid(path: path) }
        return path
    }
}
