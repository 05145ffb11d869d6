import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverFileStore
import Foundation
import Hummingbird

/// `/v1/sessions/{id}/resources`: list and retrieve a session's resources; add a file or a git
/// repository to a live session, rotate a repository's token, and remove a resource. A worker
/// reads the session's repositories, and puts its added files in place from the file store
/// (`IncomingFiles`), at each tool call, so a change counts from the next call.
struct SessionResourceController: Sendable {
    let files: UploadedFiles
    var store: ControlPlaneStore { files.store }
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.get(use: list).get(":resource_id", use: retrieve)
            .post(use: add)
            .post(":resource_id", use: update)
            .delete(":resource_id", use: delete)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let session = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let input = RequestInput(request)
        let resources = session.json["resources"]?.arrayValue ?? []
        return jsonResponse(try PageQuery(input, defaultLimit: 1000, maxLimit: 1000).page(of: resources) { $0 })
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        let (_, _, resource) = try await find(context)
        return jsonResponse(.object(resource))
    }

    /// Adds a `github_repository` or a `file`. A file goes to the file store; the session's
    /// sandbox moves it into /workspace at its next tool call, so the host never writes by path
    /// where an agent does.
    @Sendable func add(_ request: Request, context: APIRequestContext) async throws -> Response {
        let session = try await liveSession(context)
        let body = try await RequestInput.decode(ResourceBody.self, from: request, context: context).fields
        guard ["github_repository", "file"].contains(body["type"]?.stringValue) else {
            throw APIError.invalid(
                "type", "must be file or github_repository",
                fix: "send {\"type\": \"file\", \"file_id\": ...} or {\"type\": \"github_repository\", \"url\": ...}")
        }
        if let environment = session.json["environment_id"]?.stringValue,
            try await store.find(.environments, id: environment, workspace: context.workspace)?.isSelfHostedEnvironment == true
        {
            throw APIError.invalid(
                "type",
                "session \(session.id) runs in a self_hosted environment: its tools run in your worker's directory, where Drover mounts nothing",
                fix: "put the file in the worker's workdir")
        }
        var resources = session.json["resources"]?.arrayValue ?? []
        let existing = resources.compactMap { $0.objectValue?["mount_path"]?.stringValue?.dropFirst("/workspace/".count) }.map(String.init)
        let checked = try await files.resources([.object(body)], workspace: context.workspace, now: ControlPlaneStore.timestamp(), existing: existing)
        if let file = checked.files.first {
            let id = file.resource.objectValue?["id"]?.stringValue ?? ""
            let data = try files.blobs().read(workspace: context.workspace, id: file.fileID)
            do {
                let stored = try await files.sessionFiles.store.put(data, path: file.relativePath)
                try await files.sessionFiles.addIncoming(try SessionID(session.id), resourceID: id, file: stored)
            } catch let error as FileStoreError {
                throw APIError.invalid("file_id", "\(error)")
            }
            resources.append(file.resource)
            try await save(session, resources: resources)
            return jsonResponse(file.resource)
        }
        // The field names of a single resource are its own, not `resources[0].…`.
        guard let repository = checked.repositories.first else { throw APIError.invalid("type", "must be github_repository") }
        try await store.saveRepositoryToken(repository, session: session.id, workspace: context.workspace, keyring: files.options.vaultKeyring)
        resources.append(.object(repository.resource))
        try await save(session, resources: resources)
        return jsonResponse(.object(repository.resource))
    }

    /// Rotates a repository's token: the only change the SDK's update carries.
    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let (session, index, resource) = try await find(context, live: true)
        let body = try await RequestInput.decode(ResourceBody.self, from: request, context: context).fields
        try body.rejectUnknown(["authorization_token"], prefix: "body")
        guard resource["type"]?.stringValue == "github_repository" else {
            throw APIError.invalid("authorization_token", "only github_repository resources have a token to rotate")
        }
        guard let token = try RepositoryResource.token(body["authorization_token"], field: "authorization_token") else {
            throw APIError.invalid("authorization_token", "is required", fix: "send the new token")
        }
        var updated = resource
        updated["updated_at"] = .string(ControlPlaneStore.timestamp())
        let rotated = RepositoryResource(resource: updated, token: token, relativePath: "")
        try await store.saveRepositoryToken(rotated, session: session.id, workspace: context.workspace, keyring: files.options.vaultKeyring)
        var resources = session.json["resources"]?.arrayValue ?? []
        resources[index] = .object(updated)
        try await save(session, resources: resources)
        return jsonResponse(.object(updated))
    }

    /// Removes a resource from the session, and a repository's token with it. What is already
    /// in the workspace (the clone, the file) stays there: it is the agent's work now.
    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let (session, index, resource) = try await find(context, live: true)
        var resources = session.json["resources"]?.arrayValue ?? []
        resources.remove(at: index)
        try await save(session, resources: resources)
        let id = resource["id"]?.stringValue ?? ""
        try await store.deleteRepositoryTokens(session: session.id, resource: id)
        if resource["type"]?.stringValue == "file" {
            try await files.sessionFiles.discardIncoming(try SessionID(session.id), resourceID: id)
        }
        return jsonResponse(.object(["id": .string(id), "type": "session_resource_deleted"]))
    }

    private func liveSession(_ context: APIRequestContext) async throws -> ControlPlaneStore.Row {
        let session = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        guard session.archivedAt == nil else {
            throw APIError.invalid("session_id", "session \(session.id) is archived and its resources cannot change")
        }
        return session
    }

    private func find(_ context: APIRequestContext, live: Bool = false) async throws -> (ControlPlaneStore.Row, Int, [String: JSONValue]) {
        let session =
            live
            ? try await liveSession(context) : try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let id = try ResourceID.check(context.parameters.require("resource_id"), prefix: "sesrsc", parameter: "resource_id")
        let resources = session.json["resources"]?.arrayValue ?? []
        guard let index = resources.firstIndex(where: { $0.objectValue?["id"]?.stringValue == id }), let resource = resources[index].objectValue
        else {
            throw APIError.notFound("session resource", id)
        }
        return (session, index, resource)
    }

    private func save(_ session: ControlPlaneStore.Row, resources: [JSONValue]) async throws {
        var json = (try? JSONValue.parse(session.resource))?.objectValue ?? [:]
        json["resources"] = .array(resources)
        json["updated_at"] = .string(ControlPlaneStore.timestamp())
        try await store.update(
            .sessions, id: session.id, workspace: session.workspace, resource: JSONValue.object(json).compactJSON, archivedAt: session.archivedAt)
        try await ControlPlaneReplica(redis: files.sessionFiles.redis).publish(session: session.id, from: store)
    }
}

/// A request body taken as it is, for the resource routes to check field by field.
struct ResourceBody: APIRequestBody {
    let fields: [String: JSONValue]
    init(body: [String: JSONValue]) throws {
        fields = body
    }
}
