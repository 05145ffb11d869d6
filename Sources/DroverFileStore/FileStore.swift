import Crypto
import DroverCore
import DroverRedis
import Foundation

/// Bytes every host can reach: content-addressed blobs in Redis (`drover:blob:SHA256`), for
/// the files a session's workspace starts with, the files added to it later, and the files a
/// turn sends back. Nothing a worker needs comes from another host's disk.
///
/// A blob is keyed by its SHA-256, so a file many sessions share (a course's grader) is stored
/// once, and every read checks the bytes against the key and the size. Blobs are kept for
/// `limits.retentionSeconds` after they were last stored or read. Redis keeps strings, not
/// bytes, through this client, so a blob is stored base64 (4/3 of its size).
public struct FileStore: Sendable {
    public let redis: RedisClient
    public let limits: FileStoreLimits

    public init(redis: RedisClient, limits: FileStoreLimits = FileStoreLimits()) {
        self.redis = redis
        self.limits = limits
    }

    static func blobKey(_ sha256: String) -> String { "drover:blob:\(sha256)" }

    /// Stores `data` for `path` (once per content) and returns its record.
    public func put(_ data: Data, path: String, executable: Bool = false) async throws -> StoredFile {
        guard data.count <= limits.maxFileBytes else {
            throw FileStoreError.fileTooLarge(path: path, size: data.count, limit: limits.maxFileBytes)
        }
        let digest = SHA256.hash(data: data).lowercaseHex
        let key = Self.blobKey(digest)
        let ttl = String(limits.retentionSeconds)
        // Content already there is only kept longer: a file a thousand sessions share is sent once.
        if try await redis.send(["EXPIRE", key, ttl], idempotent: true).throwingErrorReply().int != 1 {
            _ = try await redis.send(["SET", key, data.base64EncodedString(), "EX", ttl], idempotent: true).throwingErrorReply()
        }
        return StoredFile(path: path, sha256: digest, size: data.count, executable: executable)
    }

    /// The bytes of `file`, checked against its SHA-256 and size.
    public func bytes(of file: StoredFile) async throws -> Data {
        let reply = try await redis.send(["GETEX", Self.blobKey(file.sha256), "EX", String(limits.retentionSeconds)], idempotent: true)
            .throwingErrorReply()
        guard case .bulk(let text) = reply else {
            throw FileStoreError.missing(path: file.path, sha256: file.sha256, retentionDays: limits.retentionSeconds / 86_400)
        }
        guard let data = Data(base64Encoded: Data(text)), data.count == file.size, SHA256.hash(data: data).lowercaseHex == file.sha256 else {
            throw FileStoreError.corrupt(path: file.path, sha256: file.sha256)
        }
        return data
    }

    /// Stores host files (a directory stands for every regular file under it) at their paths
    /// under /workspace. Sizes are checked against the limits before anything is sent.
    public func upload(_ sources: [(source: URL, path: String)]) async throws -> [StoredFile] {
        var planned: [(URL, String, Int, Bool)] = []
        var total = 0
        for (source, path) in sources {
            for (file, relative) in try Self.regularFiles(at: source) {
                let target = try WorkspacePath.check(WorkspacePath.normalized(relative.isEmpty ? path : path + "/" + relative))
                let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
                let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
                guard size <= limits.maxFileBytes else { throw FileStoreError.fileTooLarge(path: target, size: size, limit: limits.maxFileBytes) }
                total += size
                guard total <= limits.maxSessionBytes else { throw FileStoreError.sessionTooLarge(limit: limits.maxSessionBytes) }
                let permissions = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
                planned.append((file, target, size, permissions & 0o100 != 0))
            }
        }
        var stored: [StoredFile] = []
        for (file, target, _, executable) in planned {
            stored.append(try await put(try Data(contentsOf: file), path: target, executable: executable))
        }
        return stored
    }

    /// Writes `files` under `directory`, which only the host writes (a staging directory), each
    /// checked on the way. Returns how many were written.
    @discardableResult
    public func write(_ files: [StoredFile], under directory: URL) async throws -> Int {
        let manager = FileManager.default
        for file in files {
            let relative = try WorkspacePath.check(file.path)
            let data = try await bytes(of: file)
            let target = directory.appendingPathComponent(relative)
            try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
            guard manager.createFile(atPath: target.path, contents: data, attributes: [.posixPermissions: file.executable ? 0o755 : 0o644]) else {
                throw FileStoreError.cannotWrite(path: target.path)
            }
        }
        return files.count
    }

    /// Regular files at or under `url` with their paths relative to it (empty for `url` itself),
    /// sorted, so that what depends on them (a job item's key) does not depend on directory
    /// order. Links are not followed: a job's folder is the operator's, but a link in it to
    /// elsewhere on the host must not send that file to a sandbox.
    public static func regularFiles(at url: URL) throws -> [(url: URL, relative: String)] {
        var status = stat()
        guard lstat(url.path, &status) == 0 else { throw FileStoreError.cannotRead(path: url.path, reason: String(cString: strerror(errno))) }
        if (status.st_mode & S_IFMT) == S_IFREG { return [(url, "")] }
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            throw FileStoreError.cannotRead(path: url.path, reason: "not a regular file or a directory")
        }
        var found: [(url: URL, relative: String)] = []
        let base = url.standardizedFileURL.path
        let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey, .isSymbolicLinkKey])
        while let next = enumerator?.nextObject() as? URL {
            let values = try? next.resourceValues(forKeys: [.isRegularFileKey, .isSymbolicLinkKey])
            guard values?.isSymbolicLink != true, values?.isRegularFile == true else { continue }
            let path = next.standardizedFileURL.path
            guard path.hasPrefix(base + "/") else { continue }
            found.append((next, String(path.dropFirst(base.count + 1))))
        }
        return found.sorted { $0.relative < $1.relative }
    }
}

public enum FileStoreError: Error, CustomStringConvertible, Equatable {
    case fileTooLarge(path: String, size: Int, limit: Int)
    case sessionTooLarge(limit: Int)
    case missing(path: String, sha256: String, retentionDays: Int)
    case corrupt(path: String, sha256: String)
    case cannotRead(path: String, reason: String)
    case cannotWrite(path: String)

    public var description: String {
        switch self {
        case .fileTooLarge(let path, let size, let limit):
            "\(path) is \(size) bytes, over the file store's limit of \(limit) bytes per file. Fix: make the file smaller, or raise DROVER_FILE_STORE_MAX_BYTES"
        case .sessionTooLarge(let limit):
            "a session's files come to more than the file store's limit of \(limit) bytes. Fix: send fewer or smaller files, or raise DROVER_FILE_STORE_SESSION_BYTES"
        case .missing(let path, let sha256, let days):
            "the file store no longer holds \(path) (sha256 \(sha256.prefix(12))…): files are kept \(days) days after they were last used. Fix: add the file again, or raise DROVER_FILE_STORE_DAYS"
        case .corrupt(let path, let sha256):
            "the file store's copy of \(path) does not match its checksum (sha256 \(sha256.prefix(12))…), so it was not used. Fix: add the file again"
        case .cannotRead(let path, let reason):
            "cannot read \(path): \(reason)"
        case .cannotWrite(let path):
            "cannot write \(path)"
        }
    }
}
