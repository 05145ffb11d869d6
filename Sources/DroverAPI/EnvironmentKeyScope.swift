import DroverDatabase
import Hummingbird

/// What a self-hosted environment's key (`ControlPlaneStore.environmentKeyPrefix`) may reach:
/// the environment's work endpoints, and the sessions that run in it (retrieve, their events,
/// their stream, and sending tool results). Everything else is refused, whatever the server's
/// mode: a worker's key is a credential on a user's machine, and must be worth no more than
/// the sessions it serves.
struct EnvironmentKeyScope: Sendable {
    let store: ControlPlaneStore

    func check(_ request: Request, key: ControlPlaneStore.EnvironmentKey) async throws {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let method = request.method
        if parts.count >= 4, parts[1] == "environments", parts[2] == key.environmentID, parts[3] == "work" { return }
        if parts.count >= 3, parts[1] == "sessions" {
            let rest = Array(parts.dropFirst(3))
            let allowed =
                (rest.isEmpty && method == .get) || (rest == ["events"] && (method == .get || method == .post))
                || (rest == ["events", "stream"] && method == .get)
            if allowed {
                let row = try await store.find(.sessions, id: parts[2], workspace: key.workspace)
                if let row, row.json["environment_id"]?.stringValue == key.environmentID { return }
                // The same answer as for a session that does not exist: a key learns nothing of others.
                throw APIError.notFound("session", parts[2])
            }
        }
        throw APIError(
            .forbidden, "permission_error",
            "an environment key reaches only its environment's work (/v1/environments/\(key.environmentID)/work) and the events of the sessions that run there. Fix: use an API key for \(request.method.rawValue) \(request.uri.path)"
        )
    }
}
