import DroverBrain
import DroverCore
import DroverDatabase
import Foundation
import Hummingbird

/// `/v1/environments`: create, retrieve, update, list, archive and delete.
extension APIServer {
    func addEnvironmentRoutes(_ router: Router<APIRequestContext>) {
        router.post("/v1/environments") { request, context in
            let params = try await RequestInput.body(request, context: context)
            let now = ControlPlaneStore.timestamp()
            let environment = try EnvironmentResource.create(id: Identifier.make(prefix: "env"), params: params, now: now)
            try await self.store.insert(
                .environments,
                .init(
                    id: environment["id"]!.stringValue!, workspace: context.workspace, createdAt: now,
                    resource: JSONValue.object(environment).compactJSON))
            return jsonResponse(.object(environment))
        }
        router.get("/v1/environments") { request, context in
            let input = RequestInput(request)
            let limit = try input.int("limit", default: 20, range: 1...100)
            let offset = try input.pageOffset()
            let rows = try await self.store.list(
                .environments, workspace: context.workspace, includeArchived: try input.bool("include_archived"), offset: offset, limit: limit + 1)
            return jsonResponse(page(rows.prefix(limit).map { .object($0.json) }, next: rows.count > limit ? "page_\(offset + limit)" : nil))
        }
        router.get("/v1/environments/:environment_id") { _, context in
            jsonResponse(.object(try await self.environment(context.parameters.require("environment_id"), workspace: context.workspace).json))
        }
        router.post("/v1/environments/:environment_id") { request, context in
            let params = try await RequestInput.body(request, context: context)
            try params.rejectUnknown(EnvironmentResource.fields)
            let current = try await self.environment(context.parameters.require("environment_id"), workspace: context.workspace)
            guard current.archivedAt == nil else {
                throw APIError(
                    .badRequest, "invalid_request_error", "environment \(current.id) is archived and cannot be updated",
                    errorCode: "environment_archived")
            }
            var environment = current.json
            try EnvironmentResource.apply(params, to: &environment)
            environment["updated_at"] = .string(ControlPlaneStore.timestamp())
            try await self.store.update(
                .environments, id: current.id, workspace: context.workspace, resource: JSONValue.object(environment).compactJSON, archivedAt: nil)
            return jsonResponse(.object(environment))
        }
        router.post("/v1/environments/:environment_id/archive") { _, context in
            let current = try await self.environment(context.parameters.require("environment_id"), workspace: context.workspace)
            let archivedAt = current.archivedAt ?? ControlPlaneStore.timestamp()
            try await self.store.update(.environments, id: current.id, workspace: context.workspace, resource: nil, archivedAt: archivedAt)
            var environment = current.json
            environment["archived_at"] = .string(archivedAt)
            return jsonResponse(.object(environment))
        }
        // The local sandbox pool has one turn queue for every environment; this reports it.
        router.get("/v1/environments/:environment_id/work/stats") { _, context in
            _ = try await self.environment(context.parameters.require("environment_id"), workspace: context.workspace)
            let stats = try await self.queue.stats(TurnQueue.defaultName)
            let oldest =
                stats.oldestReadyAgeMs.map { JSONValue.string(ControlPlaneStore.timestamp(Date().addingTimeInterval(-Double($0) / 1000))) } ?? .null
            return jsonResponse(
                .object([
                    "type": "work_queue_stats", "depth": .number(Double(stats.ready + stats.delayed)),
                    "pending": .number(Double(stats.leased)), "oldest_queued_at": oldest, "workers_polling": .null,
                ]))
        }
        router.delete("/v1/environments/:environment_id") { _, context in
            let current = try await self.environment(context.parameters.require("environment_id"), workspace: context.workspace)
            _ = try await self.store.delete(.environments, id: current.id, workspace: context.workspace)
            return jsonResponse(.object(["id": .string(current.id), "type": "environment_deleted"]))
        }
    }

    func environment(_ id: String, workspace: String) async throws -> ControlPlaneStore.Row {
        let id = try ResourceID.check(id, prefix: "env", parameter: "environment_id")
        guard let row = try await store.find(.environments, id: id, workspace: workspace) else {
            throw APIError.notFound("environment", id, errorCode: "environment_not_found")
        }
        return row
    }
}
