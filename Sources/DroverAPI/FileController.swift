import DroverCore
import DroverDatabase
import DroverFileStore
import Foundation
import Hummingbird
import NIOCore

/// `/v1/files`: upload (multipart), list, retrieve metadata, download and delete. Metadata is a
/// row in the `files` table; the bytes are in `FileBlobs`. Every lookup is scoped to the caller's
/// workspace (I7, docs/ARCHITECTURE.md), and an expired file is deleted when it is next looked at.
struct FileController: Sendable {
    let files: UploadedFiles
    var store: ControlPlaneStore { files.store }
    var options: APIServer.Options { files.options }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.post(use: upload)
            .get(use: list)
            .get(":file_id", use: retrieve)
            .get(":file_id/content", use: download)
            .delete(":file_id", use: delete)
    }

    @Sendable func upload(_ request: Request, context: APIRequestContext) async throws -> Response {
        let blobs = try files.blobs()
        guard let boundary = request.headers[.contentType].flatMap(MultipartForm.boundary(contentType:)) else {
            throw APIError.invalid(
                "body", "expected multipart/form-data with a boundary",
                fix: "upload with a multipart `file` part, as client.beta.files.upload(file=...) does")
        }
        let limit = options.maxFileBytes
        let buffer: ByteBuffer
        do {
            // Room for the multipart framing around a file of exactly the limit.
            buffer = try await request.body.collect(upTo: limit + 64 * 1024)
        } catch is NIOTooManyBytesError {
            throw UploadedFiles.fileTooLarge(limit)
        }
        let form = try MultipartForm.parse(Data(buffer: buffer), boundary: boundary)
        if let unknown = form.parts.map(\.name).first(where: { $0 != "file" && $0 != "expires_in_seconds" }) {
            throw APIError.invalid(unknown, "unknown field", fix: "send only file and expires_in_seconds")
        }
        guard let part = form.part("file") else {
            throw APIError.invalid("file", "the field is required", fix: "send the content as a multipart part named file")
        }
        guard part.body.count <= limit else { throw UploadedFiles.fileTooLarge(limit) }
        let now = Date()
        var expiresAt = JSONValue.null
        if let expiry = form.part("expires_in_seconds") {
            let text = String(decoding: expiry.body, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard let seconds = Int(text), UploadedFiles.uploadExpiry.contains(seconds) else {
                throw APIError.invalid("expires_in_seconds", "'\(text.prefix(40))' is not an integer from 3600 to 7776000")
            }
            expiresAt = .string(ControlPlaneStore.timestamp(now.addingTimeInterval(Double(seconds))))
        }
        let id = Identifier.make(prefix: "file")
        let created = ControlPlaneStore.timestamp(now)
        let metadata: [String: JSONValue] = [
            "type": "file", "id": .string(id), "created_at": .string(created),
            "filename": .string(UploadedFiles.storedFilename(part.filename)),
            "mime_type": .string(UploadedFiles.mimeType(part.contentType, filename: part.filename)),
            "size_bytes": .number(Double(part.body.count)), "downloadable": .bool(true),
            "expires_at": expiresAt, "scope": .null,
        ]
        try blobs.write(part.body, workspace: context.workspace, id: id)
        do {
            try await store.insert(
                .files, .init(id: id, workspace: context.workspace, createdAt: created, resource: JSONValue.object(metadata).compactJSON))
        } catch {
            blobs.remove(workspace: context.workspace, id: id)
            throw error
        }
        return jsonResponse(.object(metadata))
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        _ = try files.blobs()
        let input = RequestInput(request)
        if let ids = input.query["ids"], !ids.isEmpty {
            guard input.string("page") == nil, input.string("limit") == nil else {
                throw APIError.invalid("ids", "ids cannot be combined with page or limit", fix: "send either ids, or page and limit")
            }
            let unique = ids.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            guard unique.count <= 100 else { throw APIError.invalid("ids", "at most 100 ids") }
            var found: [JSONValue] = []
            for id in unique {
                if let row = try? await files.file(id, workspace: context.workspace) { found.append(UploadedFiles.fileJSON(row)) }
            }
            return jsonResponse(page(found, next: nil))
        }
        let paging = try PageQuery(input, maxLimit: 1000)
        var conditions: [(path: String, value: String)] = []
        if let scope = input.string("scope_id") { conditions.append(("$.scope.id", scope)) }
        let rows = try await store.list(
            .files, workspace: context.workspace, includeArchived: false, offset: paging.offset, limit: paging.fetch, where: conditions)
        let now = ControlPlaneStore.timestamp()
        // An expired file is left out of its page, as a lookup would not find it.
        let live = rows.prefix(paging.limit).filter { !UploadedFiles.isExpired($0, now: now) }
        return jsonResponse(page(live.map(UploadedFiles.fileJSON), next: paging.next(fetched: rows.count)))
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(UploadedFiles.fileJSON(try await files.file(context.parameters.require("file_id"), workspace: context.workspace)))
    }

    @Sendable func download(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await files.file(context.parameters.require("file_id"), workspace: context.workspace)
        let data = try files.blobs().read(workspace: context.workspace, id: row.id)
        var headers = HTTPFields()
        headers[.contentType] = UploadedFiles.fileJSON(row).objectValue?["mime_type"]?.stringValue ?? "application/octet-stream"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await files.file(context.parameters.require("file_id"), workspace: context.workspace)
        _ = try await store.delete(.files, id: row.id, workspace: context.workspace)
        try files.blobs().remove(workspace: context.workspace, id: row.id)
        return jsonResponse(.object(["id": .string(row.id), "type": "file_deleted"]))
    }
}

/// Uploaded files: their rows and their bytes, looked up in the caller's workspace.
struct UploadedFiles: Sendable {
    static let uploadExpiry = 3600...7_776_000

    let store: ControlPlaneStore
    let options: APIServer.Options
    /// Where file resources go for the workers (`SessionFiles`).
    let sessionFiles: SessionFiles

    func blobs() throws -> FileBlobs {
        guard let directory = options.filesDirectory else {
            throw APIError.notBuilt("the Files API without a data directory (Options.filesDirectory)")
        }
        return FileBlobs(root: directory)
    }

    /// The file in the caller's workspace; an expired one is deleted and not found.
    func file(_ id: String, workspace: String, parameter: String = "file_id") async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "file", parameter: parameter)
        let notFound =
            parameter == "file_id"
            ? APIError.notFound("file", id)
            : APIError(
                .notFound, "not_found_error",
                "\(parameter): file \(id) was not found in this workspace. Fix: upload it with client.beta.files.upload using this workspace's key")
        guard let row = try await store.find(.files, id: id, workspace: workspace) else { throw notFound }
        if UploadedFiles.isExpired(row, now: ControlPlaneStore.timestamp()) {
            _ = try await store.delete(.files, id: row.id, workspace: workspace)
            try blobs().remove(workspace: workspace, id: row.id)
            throw notFound
        }
        return row
    }

    static func fileJSON(_ row: ControlPlaneStore.Row) -> JSONValue {
        .object((try? JSONValue.parse(row.resource))?.objectValue ?? [:])
    }

    /// Timestamps share one format, so they compare as strings.
    static func isExpired(_ row: ControlPlaneStore.Row, now: String) -> Bool {
        guard let expires = fileJSON(row).objectValue?["expires_at"]?.stringValue else { return false }
        return expires <= now
    }

    static func fileTooLarge(_ limit: Int) -> APIError {
        APIError(
            .contentTooLarge, "invalid_request_error",
            "file: the file is over the limit of \(limit) bytes. Fix: upload a smaller file, or raise the limit with `drover serve --max-file-bytes`")
    }

    /// Only the final path component of the part's filename is kept; none is `unnamed`.
    static func storedFilename(_ filename: String?) -> String {
        let last = (filename ?? "").split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let clean = String(last.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 }.map(Character.init)).prefix(255)
        return clean.isEmpty || clean == "." || clean == ".." ? "unnamed" : String(clean)
    }

    static func mimeType(_ contentType: String?, filename: String?) -> String {
        if let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased(),
            !type.isEmpty, type != "application/octet-stream"
        {
            return type
        }
        let known = [
            "txt": "text/plain", "md": "text/markdown", "csv": "text/csv", "json": "application/json", "pdf": "application/pdf",
            "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
            "html": "text/html", "py": "text/x-python", "yaml": "application/yaml", "yml": "application/yaml",
        ]
        let ext = filename.map { URL(fileURLWithPath: $0).pathExtension.lowercased() } ?? ""
        return known[ext] ?? "application/octet-stream"
    }
}
