import DroverBrain
import DroverCore
import DroverDatabase
import DroverQueue
import DroverRedis
import DroverSelfHosted
import Foundation
import Hummingbird

/// `/v1/environments/{id}/work`: a self-hosted environment's work queue, in the shapes the SDK's
/// `EnvironmentWorker` drives (poll, ack, heartbeat, stop) and the ones people inspect it with
/// (list, retrieve, update, stats). A worker calls it with the environment's key
/// (`EnvironmentKeyScope`); an API key of the workspace may call it too.
struct WorkController: Sendable {
    let store: ControlPlaneStore
    let queue: TaskQueue
    let work: WorkQueue
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.get(use: list)
            .get("poll", use: poll)
            .get("stats", use: stats)
            .get(":work_id", use: retrieve)
            .post(":work_id", use: update)
            .post(":work_id/ack", use: ack)
            .post(":work_id/heartbeat", use: heartbeat)
            .post(":work_id/stop", use: stop)
    }

    /// The environment of the path, which must be self-hosted: a cloud environment's sessions
    /// run in Drover's sandboxes and have no work items.
    private func selfHosted(_ context: APIRequestContext) async throws -> String {
        let row = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        guard row.isSelfHostedEnvironment else {
            throw APIError.invalid(
                "environment_id", "environment \(row.id) is a cloud environment: its sessions run in Drover's sandboxes, and it has no work items",
                fix: "create an environment with config {\"type\": \"self_hosted\"} for workers on your own machines")
        }
        return row.id
    }

    private func workID(_ context: APIRequestContext) throws -> String {
        try ResourceID.check(context.parameters.require("work_id"), prefix: "work", parameter: "work_id")
    }

    @Sendable func poll(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        let input = RequestInput(request)
        let block = input.string("block_ms") == nil ? 0 : try input.int("block_ms", default: 0, range: 1...999)
        let reclaim = input.string("reclaim_older_than_ms") == nil ? nil : try input.int("reclaim_older_than_ms", default: 5000, range: 1...3_600_000)
        let worker = request.headers[.init("anthropic-worker-id")!] ?? ""
        guard worker.utf8.count <= 256 else {
            throw APIError.invalid("Anthropic-Worker-ID", "is \(worker.utf8.count) bytes", fix: "send an id of at most 256 bytes")
        }
        let item = try await workQueueCall {
            try await work.poll(
                environment: environment, worker: worker, wait: .milliseconds(block), claimTTL: reclaim.map { .milliseconds($0) })
        }
        // No work is a JSON null, which the SDK reads as None.
        return jsonResponse(item.map { Self.json($0) } ?? .null)
    }

    @Sendable func ack(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        let id = try workID(context)
        switch try await workQueueCall({ try await work.acknowledge(environment: environment, id: id) }) {
        case .done: return jsonResponse(try await item(environment, id))
        case .conflict(let state):
            throw APIError(
                .conflict, "invalid_request_error",
                "work \(id) is \(state.rawValue), not starting: only an item just polled can be acknowledged. Fix: poll again")
        case .notFound: throw APIError.notFound("work", id)
        }
    }

    @Sendable func heartbeat(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        let id = try workID(context)
        let input = RequestInput(request)
        let desired = input.string("desired_ttl_seconds") == nil ? nil : try input.int("desired_ttl_seconds", default: 60, range: 1...86_400)
        let expected = input.string("expected_last_heartbeat")
        let outcome = try await workQueueCall {
            try await work.heartbeat(environment: environment, id: id, expected: expected, desiredTTLSeconds: desired)
        }
        switch outcome {
        case .recorded(let lease):
            return jsonResponse(
                .object([
                    "type": "work_heartbeat", "last_heartbeat": .string(lease.lastHeartbeat), "lease_extended": .bool(lease.extended),
                    "state": .string(lease.state.wire), "ttl_seconds": .number(Double(lease.ttlSeconds)),
                ]))
        case .preconditionFailed(let lease):
            throw APIError(
                .preconditionFailed, "invalid_request_error",
                "work \(id): expected_last_heartbeat does not match the server's, or the lease is no longer held (state \(lease.state.wire)); another worker may hold it. Fix: stop serving this session",
                errorCode: "heartbeat_precondition_failed",
                details: [
                    "current_state": .object([
                        "last_heartbeat": lease.lastHeartbeat.isEmpty ? .null : .string(lease.lastHeartbeat), "lease_extended": .bool(false),
                        "state": .string(lease.state.wire), "ttl_seconds": .number(Double(lease.ttlSeconds)),
                    ])
                ])
        case .notFound:
            throw APIError.notFound("work", id)
        }
    }

    @Sendable func stop(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        let id = try workID(context)
        let buffer = try await request.body.collect(upTo: APIServer.maximumBodyBytes)
        var force = false
        if buffer.readableBytes > 0 {
            let body = try JSONValue.parse(try RequestInput.utf8Text(buffer))
            guard case .object(let fields) = body else { throw APIError.invalid("body", "must be a JSON object such as {\"force\": true}") }
            try fields.rejectUnknown(["force"])
            force = try JSONValue.bool(fields["force"], path: "force") ?? false
        }
        switch try await workQueueCall({ try await work.stop(environment: environment, id: id, force: force) }) {
        case .done: return jsonResponse(try await item(environment, id))
        case .conflict: throw APIError(.conflict, "invalid_request_error", "work \(id) is already stopped")
        case .notFound: throw APIError.notFound("work", id)
        }
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        return jsonResponse(try await item(environment, try workID(context)))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        let id = try workID(context)
        let buffer = try await request.body.collect(upTo: APIServer.maximumBodyBytes)
        guard case .object(let fields) = try JSONValue.parse(try RequestInput.utf8Text(buffer)) else {
            throw APIError.invalid("body", "must be a JSON object such as {\"metadata\": {\"key\": \"value\"}}")
        }
        try fields.rejectUnknown(["metadata"])
        guard case .object(let patch)? = fields["metadata"] else {
            throw APIError.invalid("metadata", "is required: an object of string values, or null to delete a key")
        }
        var changes: [String: String?] = [:]
        for (key, value) in patch {
            guard !key.isEmpty, key.utf8.count <= 64 else { throw APIError.invalid("metadata", "keys must be 1 to 64 bytes") }
            switch value {
            case .null: changes[key] = .some(nil)
            case .string(let text) where text.utf8.count <= 512: changes[key] = .some(text)
            default: throw APIError.invalid("metadata.\(key)", "must be a string of at most 512 bytes, or null to delete it")
            }
        }
        guard try await workQueueCall({ try await work.updateMetadata(environment: environment, id: id, patch: changes) }) else {
            throw APIError.notFound("work", id)
        }
        let updated = try await item(environment, id)
        if case .object(let merged)? = updated.objectValue?["metadata"], merged.count > 16 {
            throw APIError.invalid("metadata", "an item keeps at most 16 keys, and now has \(merged.count)", fix: "delete keys with null")
        }
        return jsonResponse(updated)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let environment = try await selfHosted(context)
        let input = RequestInput(request)
        let limit = try input.int("limit", default: 20, range: 1...100)
        var offset = 0
        if let page = input.string("page"), !page.isEmpty {
            guard page.hasPrefix("o_"), let value = Int(page.dropFirst(2)), value >= 0 else {
                throw APIError.invalid("page", "'\(page.prefix(40))' is not a cursor", fix: "pass the next_page value of a previous response")
            }
            offset = value
        }
        let items = try await workQueueCall { try await work.items(environment: environment, offset: offset, limit: limit + 1) }
        let next: JSONValue = items.count > limit ? .string("o_\(offset + limit)") : .null
        return jsonResponse(.object(["data": .array(items.prefix(limit).map(Self.json)), "next_page": next]))
    }

    /// A self-hosted environment reports its work queue; a cloud one the turn queue its
    /// sessions share in this deployment.
    @Sendable func stats(_ request: Request, context: APIRequestContext) async throws -> Response {
        let row = try await lookup.environment(context.parameters.require("environment_id"), workspace: context.workspace)
        if row.isSelfHostedEnvironment {
            let stats = try await workQueueCall { try await work.stats(environment: row.id) }
            return jsonResponse(
                .object([
                    "type": "work_queue_stats", "depth": .number(Double(stats.depth)), "pending": .number(Double(stats.pending)),
                    "oldest_queued_at": stats.oldestQueuedAt.map(JSONValue.string) ?? .null,
                    "workers_polling": .number(Double(stats.workersPolling)),
                ]))
        }
        let stats = try await queue.stats(TurnQueue.defaultName)
        let oldest =
            stats.oldestReadyAgeMs.map { JSONValue.string(ControlPlaneStore.timestamp(Date().addingTimeInterval(-Double($0) / 1000))) } ?? .null
        return jsonResponse(
            .object([
                "type": "work_queue_stats", "depth": .number(Double(stats.ready + stats.delayed)),
                "pending": .number(Double(stats.leased)), "oldest_queued_at": oldest, "workers_polling": .null,
            ]))
    }

    private func item(_ environment: String, _ id: String) async throws -> JSONValue {
        guard let item = try await workQueueCall({ try await work.item(environment: environment, id: id) }) else {
            throw APIError.notFound("work", id)
        }
        return Self.json(item)
    }

    /// The SDK's `BetaSelfHostedWork`. `secret` stays null: the worker's environment key is its
    /// credential for the item's calls.
    static func json(_ item: WorkItem) -> JSONValue {
        func time(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        return .object([
            "type": "work", "id": .string(item.id), "environment_id": .string(item.environmentID),
            "data": .object(["type": "session", "id": .string(item.sessionID)]), "state": .string(item.state.wire),
            "created_at": .string(item.createdAt), "acknowledged_at": time(item.acknowledgedAt), "started_at": time(item.startedAt),
            "latest_heartbeat_at": time(item.latestHeartbeatAt), "stop_requested_at": time(item.stopRequestedAt),
            "stopped_at": time(item.stoppedAt), "metadata": .object(item.metadata.mapValues(JSONValue.string)), "secret": .null,
        ])
    }

}

/// Runs a work-queue call, turning its errors into API errors: a Redis outage is a 503 the SDK
/// retries, as for every other call.
func workQueueCall<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as WorkQueueError {
        throw APIError(.serviceUnavailable, "api_error", error.description)
    } catch let error as RedisError {
        throw APIError(.serviceUnavailable, "api_error", error.description)
    }
}
