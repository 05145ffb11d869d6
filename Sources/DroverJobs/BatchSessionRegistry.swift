import Crypto
import DroverBrain
import DroverCore
import DroverDatabase
import Foundation

/// Makes a batch's sessions visible to the HTTP API in the local workspace, as sessions a
/// deployment fires are: each gets a session row naming the agent version it ran, with the
/// batch and item in its metadata. A job's inline agent becomes a stored agent whose id is a
/// digest of its content, so every run of an unchanged job names the same one.
public struct BatchSessionRegistry: Sendable {
    public let store: ControlPlaneStore
    public let workspace: String
    /// `{"type": "agent", "id": ..., "version": ...}`.
    public let agentReference: JSONValue
    /// The environment the sessions name: the job's stored one, one stored for its inline
    /// config (by digest, like the agent), or `env_default`, as a deployment without one has.
    public let environmentID: String

    /// The registry for a job: finds or stores its agent and environment first.
    public static func prepare(database: MirrorDatabase, workspace: String, spec: JobSpec, agentJSON: String) async throws -> BatchSessionRegistry {
        let store = ControlPlaneStore(database: database)
        let agentReference = try await agent(store, workspace: workspace, source: spec.agent, agentJSON: agentJSON, jobName: spec.name)
        var environmentID = "env_default"
        switch spec.environment {
        case nil:
            break
        case .named(let name)?:
            environmentID = try await database.environment(workspace: workspace, name: name)?.id ?? environmentID
        case .inline(let inline)?:
            let fields = inline.objectValue ?? [:]
            environmentID = "env_job_" + digest(inline.compactJSON)
            if try await store.find(.environments, id: environmentID, workspace: workspace) == nil {
                let now = ControlPlaneStore.timestamp()
                let resource: JSONValue = .object([
                    "id": .string(environmentID), "type": .string("environment"), "name": fields["name"] ?? .string(spec.name),
                    "config": fields["config"] ?? .object(["type": .string("cloud")]), "description": fields["description"] ?? .null,
                    "metadata": .object([:]), "created_at": .string(now), "updated_at": .string(now), "archived_at": .null,
                ])
                try await database.saveEnvironment(id: environmentID, workspaceID: workspace, createdAt: now, resource: resource.compactJSON)
            }
        }
        return BatchSessionRegistry(store: store, workspace: workspace, agentReference: agentReference, environmentID: environmentID)
    }

    static func digest(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).prefix(10).lowercaseHex
    }

    private static func agent(
        _ store: ControlPlaneStore, workspace: String, source agent: JobSpec.AgentSource, agentJSON: String, jobName: String
    )
        async throws -> JSONValue
    {
        switch agent {
        case .named:
            // A stored agent, as the API keeps it: its own id and newest version.
            let fields = (try? JSONValue.parse(agentJSON))?.objectValue ?? [:]
            return .object(["type": .string("agent"), "id": fields["id"] ?? .null, "version": fields["version"] ?? .number(1)])
        case .inline(let inline):
            let id = "agent_job_" + digest(agentJSON)
            if try await store.find(.agents, id: id, workspace: workspace) == nil {
                var fields = inline.objectValue ?? [:]
                if fields["name"] == nil { fields["name"] = .string(jobName) }
                let now = ControlPlaneStore.timestamp()
                let resource = try AgentParams.creating(fields, origin: .file).resource(id: id, now: now)
                do {
                    try await store.insert(
                        .agents, .init(id: id, workspace: workspace, createdAt: now, resource: JSONValue.object(resource).compactJSON))
                } catch {
                    // Another run of the same job may have stored it first; anything else is an error.
                    guard try await store.find(.agents, id: id, workspace: workspace) != nil else { throw error }
                }
            }
            return .object(["type": .string("agent"), "id": .string(id), "version": .number(1)])
        }
    }

    /// The session row for one item's session; a second call for it adds nothing.
    func register(_ session: SessionID, batchId: String, itemId: String, jobName: String) async throws {
        guard try await store.find(.sessions, id: session.rawValue, workspace: workspace) == nil else { return }
        let now = ControlPlaneStore.timestamp()
        let resource: JSONValue = .object([
            "type": .string("session"), "id": .string(session.rawValue), "agent": agentReference,
            "environment_id": .string(environmentID), "title": .string("\(jobName): \(itemId)"),
            "metadata": .object(["drover_batch": .string(batchId), "drover_item": .string(String(itemId.prefix(512)))]),
            "created_at": .string(now), "updated_at": .string(now),
            "resources": .array([]), "vault_ids": .array([]), "outcome_evaluations": .array([]), "budget": .null,
        ])
        try await store.insert(.sessions, .init(id: session.rawValue, workspace: workspace, createdAt: now, resource: resource.compactJSON))
    }
}
