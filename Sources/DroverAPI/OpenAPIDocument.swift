import DroverCore
import DroverTools

/// `GET /v1/openapi.json`: the routes Drover serves, their parameters and statuses, so that
/// clients and fuzzers can find them. Request and response bodies follow the `anthropic` SDK's
/// `types/beta` models named in each operation's description.
enum OpenAPIDocument {
    struct Operation {
        let method: String
        let path: String
        let summary: String
        let model: String
        var query: [String] = []

        /// The JSON body's schema in `components/schemas`, for operations that take one.
        var body: String? {
            switch (method, path) {
            case ("post", "/v1/agents"): "AgentCreate"
            case ("post", "/v1/agents/{agent_id}"): "AgentUpdate"
            case ("post", "/v1/environments"): "EnvironmentCreate"
            case ("post", "/v1/environments/{environment_id}"): "EnvironmentUpdate"
            case ("post", "/v1/sessions"): "SessionCreate"
            case ("post", "/v1/sessions/{session_id}"): "SessionUpdate"
            case ("post", "/v1/environments/{environment_id}/work/{work_id}"): "WorkUpdate"
            case ("post", "/v1/environments/{environment_id}/work/{work_id}/stop"): "WorkStop"
            case ("post", "/v1/sessions/{session_id}/events"): "EventsSend"
            case ("post", "/v1/sessions/{session_id}/resources"): "SessionResourceCreate"
            case ("post", "/v1/sessions/{session_id}/resources/{resource_id}"): "SessionResourceUpdate"
            case ("post", "/v1/deployments"): "DeploymentCreate"
            case ("post", "/v1/deployments/{deployment_id}"): "DeploymentUpdate"
            case ("post", "/v1/vaults"), ("post", "/v1/vaults/{vault_id}"): "VaultCreate"
            case ("post", "/v1/vaults/{vault_id}/credentials"): "CredentialCreate"
            case ("post", "/v1/vaults/{vault_id}/credentials/{credential_id}"): "CredentialUpdate"
            default: nil
            }
        }
    }

    /// Request bodies, after the SDK's `*_create_params.py` and `*_update_params.py`: the fields
    /// Drover reads, with their types, so that a fuzzer reaches past the first 400. Drover
    /// still answers anything else with a 400 naming the field.
    static let bodySchemas: JSONValue = {
        let text = #"""
            {
              "Metadata": {"type": "object", "additionalProperties": {"type": "string"}},
              "Model": {"oneOf": [{"type": "string"}, {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "speed": {"type": "string"}}}]},
              "Content": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}},
              "Event": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["user.message", "user.interrupt", "user.tool_confirmation", "user.custom_tool_result"]},
                "content": {"$ref": "#/components/schemas/Content"}, "tool_use_id": {"type": "string"}, "custom_tool_use_id": {"type": "string"},
                "result": {"type": "string", "enum": ["allow", "deny"]}, "is_error": {"type": "boolean"}}},
              "AgentReference": {"oneOf": [{"type": "string", "pattern": "^agent_[0-9A-Z]{26}$"},
                {"type": "object", "required": ["type", "id"], "properties": {"type": {"type": "string", "enum": ["agent"]}, "id": {"type": "string", "pattern": "^agent_[0-9A-Z]{26}$"}, "version": {"type": "integer"}}}]},
              "AgentCreate": {"type": "object", "required": ["name", "model"], "properties": {
                "name": {"type": "string"}, "model": {"$ref": "#/components/schemas/Model"}, "system": {"type": ["string", "null"]},
                "description": {"type": ["string", "null"]}, "tools": {"type": "array", "items": {"type": "object"}},
                "mcp_servers": {"type": "array", "items": {"type": "object"}}, "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "AgentUpdate": {"type": "object", "required": ["version"], "properties": {
                "version": {"type": "integer"}, "name": {"type": "string"}, "model": {"$ref": "#/components/schemas/Model"}, "system": {"type": ["string", "null"]},
                "description": {"type": ["string", "null"]}, "tools": {"type": "array", "items": {"type": "object"}}, "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "EnvironmentConfig": {"type": ["object", "null"], "properties": {
                "type": {"type": "string", "enum": ["cloud", "self_hosted"]},
                "networking": {"type": "object", "properties": {"type": {"type": "string", "enum": ["limited", "unrestricted"]}, "allowed_hosts": {"type": "array", "items": {"type": "string"}}, "allow_package_managers": {"type": ["boolean", "null"]}, "allow_mcp_servers": {"type": ["boolean", "null"]}}},
                "packages": {"type": "object", "properties": {"pip": {"type": "array", "items": {"type": "string"}}}}}},
              "EnvironmentCreate": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "config": {"$ref": "#/components/schemas/EnvironmentConfig"}, "description": {"type": ["string", "null"]},
                "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "WorkUpdate": {"type": "object", "required": ["metadata"], "properties": {
                "metadata": {"type": "object", "additionalProperties": {"type": ["string", "null"]}}}},
              "WorkStop": {"type": "object", "properties": {"force": {"type": "boolean"}}},
              "EnvironmentUpdate": {"type": "object", "properties": {
                "name": {"type": "string"}, "config": {"$ref": "#/components/schemas/EnvironmentConfig"}, "description": {"type": ["string", "null"]},
                "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "SessionCreate": {"type": "object", "required": ["agent", "environment_id"], "properties": {
                "agent": {"$ref": "#/components/schemas/AgentReference"}, "environment_id": {"type": "string", "pattern": "^env_[0-9A-Z]{26}$"},
                "title": {"type": ["string", "null"]}, "metadata": {"$ref": "#/components/schemas/Metadata"},
                "vault_ids": {"type": "array", "items": {"type": "string", "pattern": "^vlt_[0-9A-Z]{26}$"}},
                "initial_events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                "resources": {"type": "array", "items": {"$ref": "#/components/schemas/SessionResourceCreate"}}}},
              "SessionResourceCreate": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["file", "github_repository"]}, "file_id": {"type": "string"}, "mount_path": {"type": "string"},
                "url": {"type": "string"}, "authorization_token": {"type": "string", "writeOnly": true},
                "checkout": {"type": ["object", "null"], "required": ["type"], "properties": {
                  "type": {"type": "string", "enum": ["branch", "commit"]}, "name": {"type": "string"}, "sha": {"type": "string"}}}}},
              "SessionResourceUpdate": {"type": "object", "required": ["authorization_token"], "properties": {
                "authorization_token": {"type": "string", "writeOnly": true}}},
              "SessionUpdate": {"type": "object", "properties": {"title": {"type": ["string", "null"]}, "metadata": {"$ref": "#/components/schemas/Metadata"},
                "vault_ids": {"type": "array", "items": {"type": "string", "pattern": "^vlt_[0-9A-Z]{26}$"}}}},
              "VaultCreate": {"type": "object", "properties": {"display_name": {"type": "string"}, "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "CredentialNetworking": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["unrestricted", "limited"]}, "allowed_hosts": {"type": "array", "items": {"type": "string"}}}},
              "CredentialAuth": {"type": "object", "required": ["type"], "properties": {
                "type": {"type": "string", "enum": ["environment_variable", "static_bearer", "mcp_oauth"]}, "secret_name": {"type": "string"},
                "secret_value": {"type": "string", "writeOnly": true}, "networking": {"$ref": "#/components/schemas/CredentialNetworking"},
                "injection_location": {"type": "object", "properties": {"header": {"type": "boolean"}, "body": {"type": "boolean"}}},
                "mcp_server_url": {"type": "string"}, "token": {"type": "string", "writeOnly": true},
                "access_token": {"type": "string", "writeOnly": true}, "expires_at": {"type": ["string", "null"], "format": "date-time"},
                "refresh": {"type": ["object", "null"], "properties": {
                  "client_id": {"type": "string"}, "refresh_token": {"type": "string", "writeOnly": true}, "token_endpoint": {"type": "string"},
                  "scope": {"type": ["string", "null"]}, "resource": {"type": ["string", "null"]},
                  "token_endpoint_auth": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string", "enum": ["none", "client_secret_basic", "client_secret_post"]},
                    "client_secret": {"type": "string", "writeOnly": true}}}}}}},
              "CredentialCreate": {"type": "object", "required": ["auth"], "properties": {
                "auth": {"$ref": "#/components/schemas/CredentialAuth"}, "display_name": {"type": ["string", "null"]}, "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "CredentialUpdate": {"type": "object", "properties": {
                "auth": {"$ref": "#/components/schemas/CredentialAuth"}, "display_name": {"type": ["string", "null"]}, "metadata": {"$ref": "#/components/schemas/Metadata"}}},
              "EventsSend": {"type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
              "Schedule": {"type": ["object", "null"], "required": ["type", "expression"], "properties": {
                "type": {"type": "string", "enum": ["cron"]}, "expression": {"type": "string"}, "timezone": {"type": "string"}}},
              "DeploymentCreate": {"type": "object", "required": ["name", "agent", "environment_id", "initial_events"], "properties": {
                "name": {"type": "string"}, "agent": {"$ref": "#/components/schemas/AgentReference"}, "environment_id": {"type": "string", "pattern": "^env_[0-9A-Z]{26}$"},
                "initial_events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "schedule": {"$ref": "#/components/schemas/Schedule"},
                "description": {"type": ["string", "null"]}, "metadata": {"$ref": "#/components/schemas/Metadata"},
                "vault_ids": {"type": "array", "items": {"type": "string", "pattern": "^vlt_[0-9A-Z]{26}$"}}}},
              "DeploymentUpdate": {"type": "object", "properties": {
                "name": {"type": "string"}, "schedule": {"$ref": "#/components/schemas/Schedule"}, "description": {"type": ["string", "null"]},
                "initial_events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "metadata": {"$ref": "#/components/schemas/Metadata"},
                "vault_ids": {"type": "array", "items": {"type": "string", "pattern": "^vlt_[0-9A-Z]{26}$"}}}}
            }
            """#
        // A typo here is a bug in Drover, found by the OpenAPI test at once.
        return (try? JSONValue.parse(text)) ?? .object([:])
    }()

    /// What an event list takes: a session's, and a thread's.
    static let eventListQuery = ["limit", "page", "order", "types[]", "created_at[gt]", "created_at[gte]", "created_at[lt]", "created_at[lte]"]

    /// The format of each id a path names: a prefix, then 26 Crockford base32 characters
    /// (`Identifier`). Session ids of scheduled runs are derived: 26 lowercase hex characters.
    static func idPattern(_ parameter: String) -> String? {
        switch parameter {
        case "agent_id": "^agent_[0-9A-Z]{26}$"
        case "environment_id": "^env_[0-9A-Z]{26}$"
        case "session_id": "^sesn_[0-9A-Za-z]{26}$"
        case "deployment_id": "^depl_[0-9A-Z]{26}$"
        case "deployment_run_id": "^drun_[0-9A-Z]{26}$"
        case "file_id": "^file_[0-9A-Z]{26}$"
        case "resource_id": "^sesrsc_[0-9A-Z]{26}$"
        case "work_id": "^work_[0-9A-Z]{26}$"
        case "key_id": "^envkey_[0-9A-Z]{26}$"
        // The primary thread, or a child: the session's id part, then the seq of the call that started it.
        case "thread_id": "^sthr_[0-9A-Za-z]{26}(_[0-9]{6,18})?$"
        default: nil
        }
    }

    static let operations: [Operation] = [
        .init(method: "post", path: "/v1/agents", summary: "Create an agent", model: "BetaManagedAgentsAgent"),
        .init(
            method: "get", path: "/v1/agents", summary: "List agents", model: "SyncPageCursor[BetaManagedAgentsAgent]",
            query: ["limit", "page", "include_archived", "created_at[gt]", "created_at[gte]", "created_at[lt]", "created_at[lte]"]),
        .init(method: "get", path: "/v1/agents/{agent_id}", summary: "Retrieve an agent", model: "BetaManagedAgentsAgent", query: ["version"]),
        .init(
            method: "post", path: "/v1/agents/{agent_id}", summary: "Update an agent (a new version; `version` checks for 409)",
            model: "BetaManagedAgentsAgent"),
        .init(method: "post", path: "/v1/agents/{agent_id}/archive", summary: "Archive an agent", model: "BetaManagedAgentsAgent"),
        .init(
            method: "get", path: "/v1/agents/{agent_id}/versions", summary: "List an agent's versions",
            model: "SyncPageCursor[BetaManagedAgentsAgent]", query: ["limit", "page"]),
        .init(method: "post", path: "/v1/environments", summary: "Create an environment", model: "BetaEnvironment"),
        .init(
            method: "get", path: "/v1/environments", summary: "List environments", model: "SyncPageCursor[BetaEnvironment]",
            query: ["limit", "page", "include_archived"]),
        .init(method: "get", path: "/v1/environments/{environment_id}", summary: "Retrieve an environment", model: "BetaEnvironment"),
        .init(method: "post", path: "/v1/environments/{environment_id}", summary: "Update an environment", model: "BetaEnvironment"),
        .init(method: "post", path: "/v1/environments/{environment_id}/archive", summary: "Archive an environment", model: "BetaEnvironment"),
        .init(method: "delete", path: "/v1/environments/{environment_id}", summary: "Delete an environment", model: "BetaEnvironmentDeleteResponse"),
        .init(
            method: "get", path: "/v1/environments/{environment_id}/work/stats",
            summary: "A self-hosted environment's work queue; for a cloud one, the turn queue its sessions share",
            model: "BetaSelfHostedWorkQueueStats"),
        .init(
            method: "get", path: "/v1/environments/{environment_id}/work/poll",
            summary: "Claim the oldest queued work item (a self-hosted environment; JSON null when none)", model: "BetaSelfHostedWork",
            query: ["block_ms", "reclaim_older_than_ms"]),
        .init(
            method: "get", path: "/v1/environments/{environment_id}/work", summary: "List work items, newest first",
            model: "BetaSelfHostedWorkListResponse", query: ["limit", "page"]),
        .init(method: "get", path: "/v1/environments/{environment_id}/work/{work_id}", summary: "Retrieve a work item", model: "BetaSelfHostedWork"),
        .init(
            method: "post", path: "/v1/environments/{environment_id}/work/{work_id}", summary: "Update a work item's metadata",
            model: "BetaSelfHostedWork"),
        .init(
            method: "post", path: "/v1/environments/{environment_id}/work/{work_id}/ack", summary: "Acknowledge a polled work item",
            model: "BetaSelfHostedWork"),
        .init(
            method: "post", path: "/v1/environments/{environment_id}/work/{work_id}/heartbeat",
            summary: "Renew a work item's lease (412 heartbeat_precondition_failed once it is lost)", model: "BetaSelfHostedWorkHeartbeatResponse",
            query: ["expected_last_heartbeat", "desired_ttl_seconds"]),
        .init(
            method: "post", path: "/v1/environments/{environment_id}/work/{work_id}/stop",
            summary: "Stop a work item (force: at once; else the worker finishes)", model: "BetaSelfHostedWork"),
        .init(
            method: "post", path: "/v1/environments/{environment_id}/keys",
            summary: "Create a worker key for a self-hosted environment (Drover's own; shown once)", model: "EnvironmentKey"),
        .init(method: "get", path: "/v1/environments/{environment_id}/keys", summary: "List an environment's worker keys", model: "EnvironmentKey"),
        .init(
            method: "delete", path: "/v1/environments/{environment_id}/keys/{key_id}", summary: "Revoke an environment's worker key",
            model: "EnvironmentKey"),
        .init(method: "post", path: "/v1/sessions", summary: "Create a session (snapshots the agent)", model: "BetaManagedAgentsSession"),
        .init(
            method: "get", path: "/v1/sessions", summary: "List sessions", model: "SyncPageCursor[BetaManagedAgentsSession]",
            query: [
                "limit", "page", "order", "include_archived", "agent_id", "agent_version", "statuses[]", "created_at[gt]", "created_at[gte]",
                "created_at[lt]", "created_at[lte]",
            ]),
        .init(
            method: "get", path: "/v1/sessions/{session_id}", summary: "Retrieve a session with stats and usage", model: "BetaManagedAgentsSession"),
        .init(method: "post", path: "/v1/sessions/{session_id}", summary: "Update a session's title and metadata", model: "BetaManagedAgentsSession"),
        .init(method: "post", path: "/v1/sessions/{session_id}/archive", summary: "Archive a session", model: "BetaManagedAgentsSession"),
        .init(method: "delete", path: "/v1/sessions/{session_id}", summary: "Delete a session", model: "BetaManagedAgentsDeletedSession"),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/events", summary: "List a session's events",
            model: "SyncPageCursor[BetaManagedAgentsSessionEvent]",
            query: eventListQuery),
        .init(
            method: "post", path: "/v1/sessions/{session_id}/events", summary: "Send events (a user.message enqueues a turn)",
            model: "BetaManagedAgentsSendSessionEvents"),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/events/stream",
            summary: "Stream events (SSE): replay from Last-Event-ID or after_id, then live", model: "BetaManagedAgentsStreamSessionEvents",
            query: ["event_deltas[]", "after_id"]),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/threads", summary: "List a session's threads: its primary thread, then those it started",
            model: "SyncPageCursor[BetaManagedAgentsSessionThread]", query: ["limit", "page", "statuses[]"]),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/threads/{thread_id}", summary: "Retrieve a session thread",
            model: "BetaManagedAgentsSessionThread"),
        .init(
            method: "post", path: "/v1/sessions/{session_id}/threads/{thread_id}/archive",
            summary: "Archive a child thread (it stops, and takes no more messages)", model: "BetaManagedAgentsSessionThread"),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/threads/{thread_id}/events", summary: "List a thread's events",
            model: "SyncPageCursor[BetaManagedAgentsSessionEvent]",
            query: eventListQuery),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/threads/{thread_id}/stream", summary: "Stream a thread's events (SSE)",
            model: "BetaManagedAgentsStreamSessionThreadEvents", query: ["event_deltas[]", "after_id"]),
        .init(
            method: "post", path: "/v1/deployments", summary: "Create a deployment (cron schedule checked; 400 names the field)",
            model: "BetaManagedAgentsDeployment"),
        .init(
            method: "get", path: "/v1/deployments", summary: "List deployments", model: "SyncPageCursor[BetaManagedAgentsDeployment]",
            query: ["limit", "page", "include_archived", "status", "agent_id", "created_at[gte]", "created_at[lte]"]),
        .init(
            method: "get", path: "/v1/deployments/{deployment_id}", summary: "Retrieve a deployment with upcoming_runs_at and last_run_at",
            model: "BetaManagedAgentsDeployment"),
        .init(method: "post", path: "/v1/deployments/{deployment_id}", summary: "Update a deployment", model: "BetaManagedAgentsDeployment"),
        .init(
            method: "post", path: "/v1/deployments/{deployment_id}/archive", summary: "Archive a deployment (it never fires again)",
            model: "BetaManagedAgentsDeployment"),
        .init(
            method: "post", path: "/v1/deployments/{deployment_id}/pause", summary: "Pause a deployment's schedule",
            model: "BetaManagedAgentsDeployment"),
        .init(
            method: "post", path: "/v1/deployments/{deployment_id}/unpause", summary: "Unpause (missed occurrences are not owed)",
            model: "BetaManagedAgentsDeployment"),
        .init(
            method: "post", path: "/v1/deployments/{deployment_id}/run", summary: "Run now: a session with the deployment's agent and initial events",
            model: "BetaManagedAgentsDeploymentRun"),
        .init(
            method: "get", path: "/v1/deployment_runs", summary: "List deployment runs, newest first",
            model: "SyncPageCursor[BetaManagedAgentsDeploymentRun]",
            query: [
                "limit", "page", "deployment_id", "trigger_type", "has_error", "created_at[gt]", "created_at[gte]", "created_at[lt]",
                "created_at[lte]",
            ]),
        .init(
            method: "get", path: "/v1/deployment_runs/{deployment_run_id}", summary: "Retrieve a deployment run",
            model: "BetaManagedAgentsDeploymentRun"),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/resources", summary: "List a session's resources (files and git repositories)",
            model: "SyncPageCursor[BetaManagedAgentsSessionResource]", query: ["limit", "page"]),
        .init(
            method: "get", path: "/v1/sessions/{session_id}/resources/{resource_id}", summary: "Retrieve a session resource",
            model: "BetaManagedAgentsSessionResource"),
        .init(
            method: "post", path: "/v1/sessions/{session_id}/resources", summary: "Add a git repository to a live session",
            model: "BetaManagedAgentsGitHubRepositoryResource"),
        .init(
            method: "post", path: "/v1/sessions/{session_id}/resources/{resource_id}", summary: "Rotate a repository resource's token",
            model: "BetaManagedAgentsGitHubRepositoryResource"),
        .init(
            method: "delete", path: "/v1/sessions/{session_id}/resources/{resource_id}", summary: "Remove a resource from a session",
            model: "BetaManagedAgentsDeleteSessionResource"),
        .init(method: "post", path: "/v1/vaults", summary: "Create a vault", model: "BetaManagedAgentsVault"),
        .init(
            method: "get", path: "/v1/vaults", summary: "List vaults", model: "SyncPageCursor[BetaManagedAgentsVault]",
            query: ["limit", "page", "include_archived"]),
        .init(method: "get", path: "/v1/vaults/{vault_id}", summary: "Retrieve a vault", model: "BetaManagedAgentsVault"),
        .init(method: "post", path: "/v1/vaults/{vault_id}", summary: "Update a vault", model: "BetaManagedAgentsVault"),
        .init(method: "post", path: "/v1/vaults/{vault_id}/archive", summary: "Archive a vault", model: "BetaManagedAgentsVault"),
        .init(method: "delete", path: "/v1/vaults/{vault_id}", summary: "Delete a vault and its credentials", model: "BetaManagedAgentsDeletedVault"),
        .init(
            method: "post", path: "/v1/vaults/{vault_id}/credentials", summary: "Add a credential (its secret is never returned)",
            model: "BetaManagedAgentsCredential"),
        .init(
            method: "get", path: "/v1/vaults/{vault_id}/credentials", summary: "List a vault's credentials",
            model: "SyncPageCursor[BetaManagedAgentsCredential]", query: ["limit", "page", "include_archived"]),
        .init(
            method: "get", path: "/v1/vaults/{vault_id}/credentials/{credential_id}", summary: "Retrieve a credential",
            model: "BetaManagedAgentsCredential"),
        .init(
            method: "post", path: "/v1/vaults/{vault_id}/credentials/{credential_id}", summary: "Update a credential (a new secret replaces the old)",
            model: "BetaManagedAgentsCredential"),
        .init(
            method: "post", path: "/v1/vaults/{vault_id}/credentials/{credential_id}/archive", summary: "Archive a credential",
            model: "BetaManagedAgentsCredential"),
        .init(
            method: "delete", path: "/v1/vaults/{vault_id}/credentials/{credential_id}", summary: "Delete a credential",
            model: "BetaManagedAgentsDeletedCredential"),
        .init(method: "post", path: "/v1/files", summary: "Upload a file (multipart/form-data: file, expires_in_seconds)", model: "BetaFileMetadata"),
        .init(
            method: "get", path: "/v1/files", summary: "List files", model: "SyncPageCursor[BetaFileMetadata]",
            query: ["limit", "page", "ids[]", "scope_id"]),
        .init(method: "get", path: "/v1/files/{file_id}", summary: "Retrieve a file's metadata", model: "BetaFileMetadata"),
        .init(method: "get", path: "/v1/files/{file_id}/content", summary: "Download a file's bytes", model: "binary"),
        .init(method: "delete", path: "/v1/files/{file_id}", summary: "Delete a file", model: "BetaDeletedFile"),
    ]

    static let document: JSONValue = {
        var paths: [String: [String: JSONValue]] = [:]
        for operation in operations {
            var parameters: [JSONValue] = []
            var rest = operation.path[...]
            while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
                let name = String(rest[rest.index(after: open)..<close])
                var schema: [String: JSONValue] = ["type": "string"]
                if let pattern = idPattern(name) { schema["pattern"] = .string(pattern) }
                parameters.append(.object(["name": .string(name), "in": "path", "required": .bool(true), "schema": .object(schema)]))
                rest = rest[rest.index(after: close)...]
            }
            for name in operation.query {
                parameters.append(.object(["name": .string(name), "in": "query", "required": .bool(false), "schema": .object(["type": "string"])]))
            }
            parameters.append(
                .object([
                    "name": "anthropic-beta", "in": "header", "required": .bool(true),
                    "schema": .object(["type": "string", "enum": .array(["managed-agents-2026-04-01"])]),
                ]))
            let success: JSONValue =
                operation.path.hasSuffix("/stream")
                ? .object([
                    "description": .string("text/event-stream of \(operation.model)"),
                    "content": .object(["text/event-stream": .object(["schema": .object(["type": "string"])])]),
                ])
                : .object([
                    "description": .string(operation.model),
                    "content": .object(["application/json": .object(["schema": .object(["type": "object"])])]),
                ])
            var responses: [String: JSONValue] = ["200": success]
            var errors = [
                ("400", "invalid_request_error naming the field"), ("401", "authentication_error"),
                ("403", "permission_error (anthropic-workspace-id of another workspace)"),
                ("404", "not_found_error (also another workspace's id)"), ("409", "conflict"), ("413", "body over 4 MB"),
                ("429", "rate_limit_error, with retry-after"),
            ]
            if operation.path == "/v1/sessions/{session_id}/events" && operation.method == "post" {
                errors.append(("422", "a tool result or confirmation that answers no waiting tool use"))
            }
            for (status, meaning) in errors {
                responses[status] = .object([
                    "description": .string(meaning),
                    "content": .object(["application/json": .object(["schema": .object(["$ref": "#/components/schemas/Error"])])]),
                ])
            }
            var entry: [String: JSONValue] = [
                "summary": .string(operation.summary), "description": .string("Body shapes: the anthropic SDK's \(operation.model)."),
                "operationId": .string(operation.method + operation.path.replacingOccurrences(of: "/", with: "_")), "parameters": .array(parameters),
                "responses": .object(responses),
            ]
            if let body = operation.body {
                entry["requestBody"] = .object([
                    "required": .bool(true),
                    "content": .object(["application/json": .object(["schema": .object(["$ref": .string("#/components/schemas/\(body)")])])]),
                ])
            }
            paths[operation.path, default: [:]][operation.method] = .object(entry)
        }
        return .object([
            "openapi": "3.1.0",
            "info": .object(["title": "Drover Managed Agents API", "version": .string("managed-agents-2026-04-01")]),
            "components": .object([
                "securitySchemes": .object([
                    "bearer": .object(["type": "http", "scheme": "bearer"]),
                    "apiKey": .object(["type": "apiKey", "in": "header", "name": "X-Api-Key"]),
                ]),
                "schemas": .object(
                    (bodySchemas.objectValue ?? [:]).merging([
                        "Error": .object([
                            "type": "object", "required": .array(["type", "error"]),
                            "properties": .object([
                                "type": .object(["type": "string", "enum": .array(["error"])]),
                                "error": .object([
                                    "type": "object", "required": .array(["type", "message"]),
                                    "properties": .object([
                                        "type": .object(["type": "string"]), "message": .object(["type": "string"]),
                                    ]),
                                ]),
                                "request_id": .object(["type": "string"]),
                            ]),
                        ])
                    ]) { first, _ in first }),
            ]),
            "security": .array([.object(["bearer": .array([])]), .object(["apiKey": .array([])])]),
            "paths": .object(paths.mapValues { .object($0) }),
        ])
    }()
}
