import DroverBrain
import DroverCore
import DroverDatabase
import DroverQueue
import DroverWebhooks
import Foundation
import Hummingbird

/// `/v1/environments`: create, retrieve, update, list, archive, delete, and the worker keys of
/// self-hosted environments (`WorkController` serves their work).
struct EnvironmentController: Sendable {
    let store: ControlPlaneStore
    let queue: TaskQueue
    let webhooks: WebhookNotifier
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.post(use: create)
            .get(use: list)
            .get(":environment_id", use: retrieve)
            .post(":environment_id", use: update)
            .post(":environment_id/archive", use: archive)
            .post(":environment_id/keys", use: createKey)
            .get(":environment_id/keys", use: listKeys)
            .delete(":environment_id/keys/:key_id", use: revokeKey)
            .delete(":environment_id", use: delete)
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(CreateEnvironmentRequest.self, from: request, context: context)
        let now = ControlPlaneStore.timestamp()
        let environment = try EnvironmentResource.create(id: Identifier.make(prefix: "env"), request: params, now: now)
        try await store.insert(.environments, resource: environment, workspace: context.workspace, createdAt: now)
        await webhooks(.environmentCreated, environment["id"]?.stringValue ?? "", workspace: context.workspace)
        return jsonResponse(.object(environment))
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = RequestInput(request)
        let paging = try PageQuery(input)
        let rows = try await store.list(
            .environments, workspace: context.workspace, includeArchived: try input.bool("include_archived"), offset: paging.offset,
            limit: paging.fetch)
        return jsonResponse(paging.page(rows) { .object($0.json) })
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        jsonResponse(.object(try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace).json))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let params = try await RequestInput.decode(UpdateEnvironmentRequest.self, from: request, context: context)
        let current = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        guard current.archivedAt == nil else {
            throw APIError(
                .badRequest, "invalid_request_error", "environment \(current.id) is archived and cannot be updated", errorCode: "environment_archived"
            )
        }
        var environment = current.json
        try EnvironmentResource.apply(params, to: &environment)
        environment["updated_at"] = .string(ControlPlaneStore.timestamp())
        try await store.update(
            .environments, id: current.id, workspace: context.workspace, resource: JSONValue.object(environment).compactJSON, archivedAt: nil)
        await webhooks(.environmentUpdated, current.id, workspace: context.workspace)
        return jsonResponse(.object(environment))
    }

    @Sendable func archive(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        let archived = try await store.archive(.environments, current, workspace: context.workspace)
        if current.archivedAt == nil { await webhooks(.environmentArchived, current.id, workspace: context.workspace) }
        return jsonResponse(.object(archived))
    }

    /// Creates a worker key for a self-hosted environment (a Drover extension: the SDK's
    /// `environment_key` comes from here). The key is in this answer only.
    @Sendable func createKey(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await lookup.liveEnvironment(context.parameters.require("environment_id"), workspace: context.workspace)
        guard environment.isSelfHostedEnvironment else {
            throw APIError.invalid(
                "environment_id", "environment \(environment.id) is a cloud environment; only a self_hosted environment has worker keys",
                fix: "create an environment with config {\"type\": \"self_hosted\"}")
        }
        let (key, secret) = try await store.createEnvironmentKey(environment: environment.id, workspace: context.workspace)
        var json = Self.json(key)
        json["key"] = .string(secret)
        return jsonResponse(.object(json))
    }

    @Sendable func listKeys(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        let keys = try await store.environmentKeys(environment: environment.id)
        return jsonResponse(.object(["data": .array(keys.map { .object(Self.json($0)) }), "next_page": .null]))
    }

    @Sendable func revokeKey(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        let id = try context.parameters.require("key_id")
        guard try await store.revokeEnvironmentKey(id: id, environment: environment.id) else {
            throw APIError.notFound("environment key", id)
        }
        return jsonResponse(.object(["id": .string(id), "type": "environment_key_revoked"]))
    }

    static func json(_ key: ControlPlaneStore.EnvironmentKey) -> [String: JSONValue] {
        [
            "type": "environment_key", "id": .string(key.id), "environment_id": .string(key.environmentID),
            "created_at": .string(key.createdAt), "revoked_at": key.revokedAt.map(JSONValue.string) ?? .null,
        ]
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        if try await store.delete(.environments, id: current.id, workspace: context.workspace) {
            await webhooks(.environmentDeleted, current.id, workspace: context.workspace)
        }
        return jsonResponse(.object(["id": .string(current.id), "type": "environment_deleted"]))
    }
}
