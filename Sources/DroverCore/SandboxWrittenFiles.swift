import CSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads out of a directory a sandbox can write (a session's workspace), as the host.
///
/// Everything in such a directory is hostile: a file may be a symbolic link to `/etc/shadow`, a
/// directory in the middle of a path may be swapped for a link between a check and a use, a
/// file may be a FIFO that blocks a reader forever or `/dev/zero` behind a link. So nothing here
/// goes by path twice: each file is opened once, relative to a descriptor of the directory, with
/// no link followed anywhere in the path (`drover_open_beneath`), then checked and read through
/// that same descriptor. Directories are walked by descriptor too, one entry at a time.
public struct SandboxWrittenFiles: Sendable {
    public let root: URL
    /// The most bytes one read or one copy takes before it fails.
    public var maxBytes: Int
    /// The most entries one copy of a directory walks.
    public var maxEntries: Int

    public init(root: URL, maxBytes: Int = 64 << 20, maxEntries: Int = 10_000) {
        self.root = root
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
    }

    public struct Refused: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }
        public var description: String { "\(path): \(reason)" }
    }

    /// The bytes of the regular file at `path` (relative to the root), or nil when there is
    /// no such file. A link, a device, a FIFO or a socket is refused.
    public func read(_ path: String) throws(Refused) -> Data? {
        guard let fd = try open(path) else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Refused(path: path, reason: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Refused(path: path, reason: "not a regular file") }
        var budget = maxBytes
        return try readAll(fd, path: path, budget: &budget)
    }

    /// Copies the file or directory at `path` to `destination` (a host path that must not exist
    /// yet; its parent is created). Links, devices, FIFOs and sockets inside a directory are
    /// skipped. False when there is nothing at `path`.
    public func copy(_ path: String, to destination: URL) throws -> Bool {
        guard let fd = try open(path) else { return false }
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        var budget = maxBytes
        var entries = maxEntries
        try copy(fd, named: path, to: destination.path, budget: &budget, entries: &entries, top: true)
        return true
    }

    /// Opens `path` beneath the root, following no link. Nil when nothing is there.
    private func open(_ path: String) throws(Refused) -> Int32? {
        let rootFD = Glibc.open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else {
            if errno == ENOENT { return nil }
            throw Refused(path: path, reason: "cannot open the workspace: \(String(cString: strerror(errno)))")
        }
        defer { close(rootFD) }
        let relative = path.hasPrefix("/") ? String(path.drop { $0 == "/" }) : path
        // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        let fd = drover_open_beneath(rootFD, relative.isEmpty ? "." : relative, O_RDONLY | O_NONBLOCK)
        if fd >= 0 { return fd }
        switch errno {
        case ENOENT, ENOTDIR: return nil
        case ELOOP: throw Refused(path: path, reason: "a symbolic link is in the way; links out of the workspace are never followed")
        case EXDEV: throw Refused(path: path, reason: "leaves the workspace")
        default: throw Refused(path: path, reason: String(cString: strerror(errno)))
        }
    }

    private func readAll(_ fd: Int32, path: String, budget: inout Int) throws(Refused) -> Data {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Refused(path: path, reason: String(cString: strerror(errno))) }
            if n == 0 { return data }
            budget -= n
            guard budget >= 0 else { throw Refused(path: path, reason: "larger than the limit of \(maxBytes) bytes") }
            data.append(contentsOf: chunk[0..<n])
        }
    }

    private func copy(_ fd: Int32, named path: String, to destination: String, budget: inout Int, entries: inout Int, top: Bool) throws {
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Refused(path: path, reason: String(cString: strerror(errno))) }
        entries -= 1
        guard entries >= 0 else { throw Refused(path: path, reason: "more than \(maxEntries) entries") }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            let data = try readAll(fd, path: path, budget: &budget)
            guard FileManager.default.createFile(atPath: destination, contents: data, attributes: [.posixPermissions: 0o644]) else {
                throw Refused(path: path, reason: "cannot write \(destination)")
            }
        case S_IFDIR:
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: false)
            // fdopendir takes the descriptor over; a duplicate keeps `fd` ours to close.
            guard let directory = fdopendir(dup(fd)) else { throw Refused(path: path, reason: String(cString: strerror(errno))) }
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name == "." || name == ".." { continue }
                let child = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                // A link (ELOOP), or an entry gone since it was listed: skipped, never followed.
                guard child >= 0 else { continue }
                var childInfo = stat()
                guard fstat(child, &childInfo) == 0,
                    [S_IFREG, S_IFDIR].contains(childInfo.st_mode & S_IFMT)
                else {
                    close(child)
                    continue
                }
                try copy(child, named: path + "/" + name, to: destination + "/" + name, budget: &budget, entries: &entries, top: false)
            }
        default:
            if top { throw Refused(path: path, reason: "not a regular file or directory") }
        }
    }
}
