import DroverBrain
import DroverCore
import DroverDatabase
import DroverQueue
import DroverWebhooks
import Foundation
import Hummingbird

/// `/v1/environments`: create, retrieve, update, list, archive, delete, and the work queue's
/// stats.
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
            .get(":environment_id/work/stats", use: workStats)
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

    /// The local sandbox pool has one turn queue for every environment; this reports it.
    @Sendable func workStats(_ request: Request, context: APIRequestContext) async throws -> Response {
        _ = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        let stats = try await queue.stats(TurnQueue.defaultName)
        let oldest =
            stats.oldestReadyAgeMs.map { JSONValue.string(ControlPlaneStore.timestamp(Date().addingTimeInterval(-Double($0) / 1000))) } ?? .null
        return jsonResponse(
            .object([
                "type": "work_queue_stats", "depth": .number(Double(stats.ready + stats.delayed)),
                "pending": .number(Double(stats.leased)), "oldest_queued_at": oldest, "workers_polling": .null,
            ]))
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let current = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        if try await store.delete(.environments, id: current.id, workspace: context.workspace) {
            await webhooks(.environmentDeleted, current.id, workspace: context.workspace)
        }
        return jsonResponse(.object(["id": .string(current.id), "type": "environment_deleted"]))
    }
}
