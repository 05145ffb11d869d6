import DroverCore
import DroverDatabase
import Hummingbird

/// `/v1/sessions/{id}/resources`: list and retrieve what the session was created with. Adding,
/// updating and deleting resources of a live session are not built (501).
struct SessionResourceController: Sendable {
    let store: ControlPlaneStore
    var lookup: ResourceLookup { ResourceLookup(store: store) }

    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.get(use: list).get(":resource_id", use: retrieve)
        // The SDK's resources.add, .update and .delete: the routes it calls, and no others.
        for (pattern, method) in [("", HTTPRequest.Method.post), (":resource_id", .post), (":resource_id", .delete)] {
            group.on(RouterPath(pattern), method: method) { _, _ -> Response in
                throw APIError.notBuilt("adding, updating or deleting resources of an existing session (pass them to sessions.create)")
            }
        }
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let session = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let input = RequestInput(request)
        let resources = session.json["resources"]?.arrayValue ?? []
        return jsonResponse(try PageQuery(input, defaultLimit: 1000, maxLimit: 1000).page(of: resources) { $0 })
    }

    @Sendable func retrieve(_ request: Request, context: APIRequestContext) async throws -> Response {
        let session = try await lookup.session(context.parameters.require("session_id"), workspace: context.workspace)
        let id = try ResourceID.check(context.parameters.require("resource_id"), prefix: "sesrsc", parameter: "resource_id")
        guard let resource = session.json["resources"]?.arrayValue?.first(where: { $0.objectValue?["id"]?.stringValue == id }) else {
            throw APIError.notFound("session resource", id)
        }
        return jsonResponse(resource)
    }
}
