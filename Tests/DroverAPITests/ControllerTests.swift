import DroverAPI
import DroverCore
import DroverDatabase
import DroverQueue
import DroverSessionLog
import DroverTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The controllers through Hummingbird's in-memory test client: the router, middleware and
/// handlers as `drover serve` runs them, over a real Redis and SQLite file, without a socket
/// (LocalModeTests and Tests/api cover real HTTP).
@Suite("API controllers")
struct ControllerTests {
    private func withRouter(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await withStores { client, _, _ in try await body(client) }
    }

    /// The router, and the stores behind it for what a response does not show.
    private func withStores(
        _ body: @escaping @Sendable (any TestClientProtocol, ControlPlaneStore, SessionLog) async throws -> Void
    ) async throws {
        try await withRedisClient(poolSize: 8) { redis, _ in
            let database = try MirrorDatabase(path: temporaryDatabasePath())
            let store = ControlPlaneStore(database: database)
            let log = SessionLog(redis: redis, database: database)
            var options = APIServer.Options()
            options.filesDirectory = URL(fileURLWithPath: database.path).deletingLastPathComponent().appendingPathComponent("files")
            let server = APIServer(
                log: log, store: store, queue: TaskQueue(redis: redis), redis: redis,
                options: options, localWorkspaceID: try await store.workspace(named: "default"))
            try await Application(router: server.router()).test(.router) { client in try await body(client, store, log) }
        }
    }

    private func call(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil
    ) async throws -> (status: Int, json: JSONValue) {
        // As the SDK's client.beta.* calls send them.
        let headers: HTTPFields = [HTTPField.Name("anthropic-beta")!: "managed-agents-2026-04-01", .contentType: "application/json"]
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            (response.status.code, (try? JSONValue.parse(String(buffer: response.body))) ?? .null)
        }
    }

    /// The message of an error response, which the API promises names the field and the fix.
    private func message(_ json: JSONValue) -> String {
        json.objectValue?["error"]?.objectValue?["message"]?.stringValue ?? ""
    }

    @Test("agents: create, page through with the cursor, refuse a stale version with 409, archive")
    func agents() async throws {
        try await withRouter { client in
            var ids: [String] = []
            for name in ["grader", "summariser", "checker"] {
                let (status, agent) = try await call(client, .post, "/v1/agents", #"{"name": "\#(name)", "model": "claude-sonnet-4-5"}"#)
                #expect(status == 200, "\(agent)")
                ids.append(try #require(agent.objectValue?["id"]?.stringValue))
            }
            var seen: [String] = []
            var page: String? = nil
            repeat {
                let (status, list) = try await call(client, .get, "/v1/agents?limit=2" + (page.map { "&page=\($0)" } ?? ""))
                #expect(status == 200)
                seen += (list.objectValue?["data"]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue }
                page = list.objectValue?["next_page"]?.stringValue
            } while page != nil && seen.count < 10
            #expect(Set(seen) == Set(ids) && seen.count == 3, "\(seen)")

            let (updated, agent) = try await call(client, .post, "/v1/agents/\(ids[0])", #"{"version": 1, "system": "Grade fairly."}"#)
            #expect(updated == 200 && agent.objectValue?["version"] == .number(2), "\(agent)")
            let (stale, conflict) = try await call(client, .post, "/v1/agents/\(ids[0])", #"{"version": 1, "system": "Grade harshly."}"#)
            #expect(stale == 409 && message(conflict).contains("version 2, not 1"), "\(conflict)")

            let (archived, resource) = try await call(client, .post, "/v1/agents/\(ids[1])/archive")
            #expect(archived == 200 && resource.objectValue?["archived_at"]?.stringValue != nil)
            let (listed, list) = try await call(client, .get, "/v1/agents")
            #expect(listed == 200 && list.objectValue?["data"]?.arrayValue?.count == 2)
        }
    }

    @Test(
        "bad input names the field and the fix: a hostile page cursor, a limit out of range, a malformed id, an unknown route",
        arguments: [
            ("/v1/agents?page=page_99999999999999999999", "page"), ("/v1/environments?limit=0", "limit"),
            ("/v1/deployment_runs?limit=1001", "limit"), ("/v1/sessions/not-a-session", "session_id"),
            ("/v1/files?limit=5000", "limit"), ("/v1/sessions?statuses=sleeping", "statuses"),
        ])
    func badQueries(_ uri: String, field: String) async throws {
        try await withRouter { client in
            let (status, error) = try await call(client, .get, uri)
            #expect(status == 400, "\(uri): \(status) \(error)")
            #expect(message(error).hasPrefix("\(field):"), "\(error)")
            let (unknown, notFound) = try await call(client, .get, "/v1/agentz")
            #expect(unknown == 404 && message(notFound).contains("openapi.json"))
        }
    }

    @Test("sessions: an unknown agent is a 404, an archived environment a 400 with its error code, and a created session lists its events")
    func sessions() async throws {
        try await withRouter { client in
            let (_, agent) = try await call(client, .post, "/v1/agents", #"{"name": "a", "model": "claude-sonnet-4-5"}"#)
            let agentID = try #require(agent.objectValue?["id"]?.stringValue)
            let (_, environment) = try await call(client, .post, "/v1/environments", #"{"name": "e"}"#)
            let environmentID = try #require(environment.objectValue?["id"]?.stringValue)

            let (missing, notFound) = try await call(
                client, .post, "/v1/sessions", #"{"agent": "agent_01NOPE", "environment_id": "\#(environmentID)"}"#)
            #expect(missing == 404 && message(notFound).contains("agent_01NOPE"), "\(notFound)")

            let (created, session) = try await call(
                client, .post, "/v1/sessions",
                #"{"agent": "\#(agentID)", "environment_id": "\#(environmentID)", "title": "t", "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "hello"}]}]}"#
            )
            #expect(created == 200, "\(session)")
            let sessionID = try #require(session.objectValue?["id"]?.stringValue)
            let (listed, events) = try await call(client, .get, "/v1/sessions/\(sessionID)/events")
            let types = (events.objectValue?["data"]?.arrayValue ?? []).compactMap { $0.objectValue?["type"]?.stringValue }
            #expect(listed == 200 && types == ["user.message"], "\(events)")

            // Typed request bodies: null clears, absent leaves alone, a typo is named with its fix.
            let (patched, updated) = try await call(
                client, .post, "/v1/sessions/\(sessionID)", #"{"title": null, "metadata": {"course": "cs101", "term": null}}"#)
            #expect(patched == 200 && updated.objectValue?["title"] == .null, "\(updated)")
            #expect(updated.objectValue?["metadata"] == .object(["course": "cs101"]), "\(updated)")
            let (kept, same) = try await call(client, .post, "/v1/sessions/\(sessionID)", #"{}"#)
            #expect(kept == 200 && same.objectValue?["metadata"] == .object(["course": "cs101"]))
            let (typo, unknown) = try await call(client, .post, "/v1/sessions", #"{"agent": "\#(agentID)", "enviroment_id": "x"}"#)
            #expect(
                typo == 400 && message(unknown).hasPrefix("enviroment_id: unknown field") && message(unknown).contains("environment_id"), "\(unknown)"
            )

            let (archivedStatus, _) = try await call(client, .post, "/v1/environments/\(environmentID)/archive")
            #expect(archivedStatus == 200)
            let (refused, error) = try await call(client, .post, "/v1/sessions", #"{"agent": "\#(agentID)", "environment_id": "\#(environmentID)"}"#)
            #expect(refused == 400 && error.objectValue?["error"]?.objectValue?["error_code"] == .string("environment_archived"), "\(error)")
        }
    }

    @Test("a session's agent is kept once: its row names the agent version, its log holds what runs, and a newer version changes neither")
    func sessionAgentKeptOnce() async throws {
        try await withStores { client, store, log in
            let (_, agent) = try await call(
                client, .post, "/v1/agents", #"{"name": "grader", "model": "claude-sonnet-4-5", "system": "Grade fairly."}"#)
            let agentID = try #require(agent.objectValue?["id"]?.stringValue)
            let (_, environment) = try await call(client, .post, "/v1/environments", #"{"name": "e"}"#)
            let environmentID = try #require(environment.objectValue?["id"]?.stringValue)
            let (created, session) = try await call(
                client, .post, "/v1/sessions", #"{"agent": "\#(agentID)", "environment_id": "\#(environmentID)"}"#)
            #expect(created == 200, "\(session)")
            let sessionID = try #require(session.objectValue?["id"]?.stringValue)

            let row = try #require(try await store.find(.sessions, id: sessionID, workspace: "wrkspc_default"))
            let stored = try JSONValue.parse(row.resource).objectValue?["agent"]
            #expect(stored == .object(["type": "agent", "id": .string(agentID), "version": 1]), "the row names the version: \(row.resource)")
            #expect(try await log.agentJSON(SessionID(sessionID))?.contains("Grade fairly.") == true, "the log holds the snapshot")

            let (updated, _) = try await call(client, .post, "/v1/agents/\(agentID)", #"{"version": 1, "system": "Grade harshly."}"#)
            #expect(updated == 200)
            let (_, retrieved) = try await call(client, .get, "/v1/sessions/\(sessionID)")
            let shown = try #require(retrieved.objectValue?["agent"]?.objectValue)
            #expect(shown["system"] == "Grade fairly." && shown["version"] == 1 && shown["name"] == "grader", "\(retrieved)")
            #expect(shown["created_at"] == nil && shown["metadata"] == nil, "only the session agent's fields: \(shown.keys.sorted())")
            let (_, listed) = try await call(client, .get, "/v1/sessions?agent_id=\(agentID)")
            let first = listed.objectValue?["data"]?.arrayValue?.first?.objectValue?["agent"]?.objectValue
            #expect(first?["system"] == "Grade fairly.", "\(listed)")
        }
    }
}
