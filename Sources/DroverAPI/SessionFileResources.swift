import DroverCore
import DroverFileStore
import Foundation
import Hummingbird

#if canImport(Glibc)
import Glibc
#endif

/// A session's `resources`: files and git repositories (`RepositoryResource`), checked at create.
/// Files are recorded on the session in the SDK's `BetaManagedAgentsFileResource` shape, and put
/// in the file store before the first turn is queued (`SessionFiles.seed`: the worker that builds
/// the session's workspace, on whichever host, writes them into /workspace as its sandbox starts).
extension UploadedFiles {
    /// Where a file goes without a `mount_path`. The SDK documents `/mnt/session/uploads/<file_id>`;
    /// Drover's sandbox exposes only /workspace, so uploads go under it.
    static let defaultMountDirectory = "uploads"

    struct FileMount {
        let resource: JSONValue
        let fileID: String
        /// Relative to /workspace, already normalized.
        let relativePath: String
    }

    /// A new session's resources, checked: its files, its repositories, and every resource as
    /// the session shows it, in the order given.
    struct SessionResources {
        var files: [FileMount] = []
        var repositories: [RepositoryResource] = []
        var shown: [JSONValue] = []
    }

    /// Validates `resources` of a new session: files of this workspace and git repositories,
    /// each at a path under /workspace, with no two at the same path (nor one inside another).
    /// `existing` are the paths (relative to /workspace) the session already holds.
    func resources(
        _ resources: [JSONValue], workspace: String, now: String, existing: [String] = [], offset: Int = 0
    ) async throws
        -> SessionResources
    {
        var checked = SessionResources()
        var taken = existing
        func claim(_ relative: String, field: String) throws {
            if let clash = taken.first(where: { $0 == relative || relative.hasPrefix($0 + "/") || $0.hasPrefix(relative + "/") }) {
                throw APIError.invalid(
                    field, "/workspace/\(relative) collides with /workspace/\(clash) of another resource", fix: "give each resource its own path")
            }
            taken.append(relative)
        }
        for (index, value) in resources.enumerated() {
            let field = "resources[\(index + offset)]"
            guard case .object(let fields) = value else { throw APIError.invalid(field, "must be an object, got \(value.kindName)") }
            switch fields["type"]?.stringValue {
            case "file":
                let mount = try await fileMount(fields, field: field, workspace: workspace, now: now)
                try claim(mount.relativePath, field: "\(field).mount_path")
                checked.files.append(mount)
                checked.shown.append(mount.resource)
            case "github_repository":
                let repository = try RepositoryResource.parse(fields, field: field, now: now)
                try claim(repository.relativePath, field: "\(field).mount_path")
                checked.repositories.append(repository)
                checked.shown.append(.object(repository.resource))
            case "memory_store"?:
                throw APIError.invalid(
                    "\(field).type", "memory_store resources are not built yet in Drover", fix: "use resources of type file or github_repository")
            default:
                throw APIError.invalid(
                    "\(field).type", "must be file or github_repository",
                    fix: "send {\"type\": \"file\", \"file_id\": ..., \"mount_path\": ...} or {\"type\": \"github_repository\", \"url\": ...}")
            }
        }
        return checked
    }

    /// One `file` resource: a file of this workspace, and its path under /workspace.
    private func fileMount(_ fields: [String: JSONValue], field: String, workspace: String, now: String) async throws -> FileMount {
        try fields.rejectUnknown(["type", "file_id", "mount_path"], prefix: field)
        guard case .string(let fileID)? = fields["file_id"] else {
            throw APIError.invalid(
                "\(field).file_id", "the field is required and must be a string", fix: "pass the id returned by client.beta.files.upload")
        }
        let row = try await file(fileID, workspace: workspace, parameter: "\(field).file_id")
        let relative: String
        switch fields["mount_path"] {
        case nil, .null?: relative = Self.defaultMountDirectory + "/" + row.id
        case .string(let text)?: relative = try Self.mountPath(text, field: "\(field).mount_path")
        case let other?: throw APIError.invalid("\(field).mount_path", "must be a string, got \(other.kindName)")
        }
        let resource: JSONValue = .object([
            "type": "file", "id": .string(Identifier.make(prefix: "sesrsc")), "file_id": .string(row.id),
            "mount_path": .string("/workspace/" + relative), "created_at": .string(now), "updated_at": .string(now),
        ])
        return FileMount(resource: resource, fileID: row.id, relativePath: relative)
    }

    /// A mount path relative to /workspace, or absolute under it; `.` and empty parts are dropped,
    /// `..` is refused. Returns the path relative to /workspace.
    static func mountPath(_ text: String, field: String) throws -> String {
        let fix = "use a path under /workspace such as /workspace/data/input.csv, or a relative one such as data/input.csv"
        guard !text.isEmpty, text.utf8.count <= 1024, !text.contains("\0") else {
            throw APIError.invalid(field, "must be a non-empty path of at most 1024 bytes", fix: fix)
        }
        var rest = Substring(text)
        if text.hasPrefix("/") {
            guard text.hasPrefix("/workspace/") else { throw APIError.invalid(field, "'\(text.prefix(200))' is outside /workspace", fix: fix) }
            rest = rest.dropFirst("/workspace/".count)
        }
        let parts = rest.split(separator: "/").filter { $0 != "." }
        guard !parts.contains("..") else { throw APIError.invalid(field, "'\(text.prefix(200))' contains '..'", fix: fix) }
        guard !parts.isEmpty else { throw APIError.invalid(field, "'\(text.prefix(200))' names /workspace itself, not a file in it", fix: fix) }
        return parts.joined(separator: "/")
    }

    /// Puts each file in the file store as the session's starting files (`SessionFiles.seed`),
    /// which the worker that first builds the session's workspace writes in, on any host.
    func storeMounts(_ mounts: [FileMount], session: SessionID, workspace: String) async throws {
        guard !mounts.isEmpty else { return }
        let blobs = try blobs()
        let limits = sessionFiles.store.limits
        var stored: [StoredFile] = []
        var total = 0
        do {
            for (index, mount) in mounts.enumerated() {
                let data = try blobs.read(workspace: workspace, id: mount.fileID)
                total += data.count
                guard total <= limits.maxSessionBytes else { throw FileStoreError.sessionTooLarge(limit: limits.maxSessionBytes) }
                do {
                    stored.append(try await sessionFiles.store.put(data, path: mount.relativePath))
                } catch let error as FileStoreError {
                    throw APIError.invalid("resources[\(index)].file_id", "\(error)")
                }
            }
            try await sessionFiles.setSeed(session, stored)
        } catch let error as FileStoreError {
            throw APIError.invalid("resources", "\(error)")
        }
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// `rejectUnknown` for a nested object, naming the field with its path.
    func rejectUnknown(_ known: Set<String>, prefix: String) throws {
        if let unknown = keys.filter({ !known.contains($0) }).sorted().first {
            throw APIError.invalid("\(prefix).\(unknown)", "unknown field", fix: "use only \(known.sorted().joined(separator: ", "))")
        }
    }
}
