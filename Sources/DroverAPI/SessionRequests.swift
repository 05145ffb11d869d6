import DroverCore
import DroverSessionLog
import Hummingbird

/// A request body as a typed value. It is read field by field with the shared field readers,
/// rather than by a synthesized `Decodable`, so that every error names the field and its fix as
/// the API promises, unknown fields are refused, and `null` (clear) stays apart from absent
/// (unchanged).
protocol APIRequestBody {
    init(body: [String: JSONValue]) throws
}

extension RequestInput {
    static func decode<Body: APIRequestBody>(_ type: Body.Type, from request: Request, context: APIRequestContext) async throws -> Body {
        try Body(body: try await body(request, context: context))
    }
}

extension APIRequestBody {
    /// `vault_ids`: at most 16 distinct vault ids, in the order given; nil when absent. Each is
    /// looked up (live, in the caller's workspace) by `ResourceLookup.liveVaults`.
    static func vaultIDs(_ body: [String: JSONValue]) throws -> [String]? {
        guard let items = try body.array("vault_ids") else { return nil }
        var ids: [String] = []
        for (index, item) in items.enumerated() {
            guard let id = item.stringValue else { throw APIError.invalid("vault_ids[\(index)]", "must be a vault id (a string)") }
            let checked = try ResourceID.check(id, prefix: "vlt", parameter: "vault_ids[\(index)]")
            if !ids.contains(checked) { ids.append(checked) }
        }
        guard ids.count <= 16 else { throw APIError.invalid("vault_ids", "at most 16 vaults") }
        return ids
    }

    /// Session budgets are not built: refused rather than ignored.
    static func refuseBudget(_ body: [String: JSONValue]) throws {
        if let budget = body["budget"], budget != .null {
            throw APIError.invalid("budget", "session budgets are not built yet in Drover", fix: "omit budget")
        }
    }
}

/// `POST /v1/sessions`.
struct CreateSessionRequest: APIRequestBody {
    static let fields: Set<String> = ["agent", "environment_id", "budget", "initial_events", "metadata", "resources", "title", "vault_ids"]

    /// An agent id or `{"type": "agent", "id", "version"}`, resolved by `ResourceLookup`.
    let agent: JSONValue?
    let environmentID: String
    let title: String?
    let metadata: JSONValue
    /// File resources, checked against the workspace's files by `UploadedFiles.mounts`.
    let resources: [JSONValue]
    let initialEvents: [NewEvent]
    /// The vaults whose credentials the session may use.
    let vaultIDs: [String]

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        agent = body["agent"]
        guard let environmentID = try body.string("environment_id", required: true) else {
            throw APIError.invalid("environment_id", "the field is required")
        }
        self.environmentID = environmentID
        vaultIDs = try Self.vaultIDs(body) ?? []
        try Self.refuseBudget(body)
        resources = try body.array("resources") ?? []
        initialEvents =
            try body.array("initial_events").map {
                try parseClientEvents(JSONValue.object(["events": .array($0)]).compactJSON, field: "initial_events")
            } ?? []
        metadata = try body.stringMap("metadata").map { try patchMetadata(nil, $0) } ?? .object([:])
        title = try body.string("title")
    }
}

/// `POST /v1/sessions/{id}`: only what is given changes.
struct UpdateSessionRequest: APIRequestBody {
    static let fields: Set<String> = ["agent", "budget", "metadata", "title", "vault_ids"]

    /// nil: unchanged; `.some(nil)`: cleared.
    let title: String??
    /// Keys to set, and keys to delete (`null`).
    let metadataPatch: [String: JSONValue]?
    /// nil: unchanged; otherwise the session's vaults from now on.
    let vaultIDs: [String]?

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        for unbuilt in ["agent", "budget"] where body[unbuilt] != nil && body[unbuilt] != .null {
            throw APIError.invalid(unbuilt, "updating a session's \(unbuilt) is not built yet in Drover", fix: "omit \(unbuilt)")
        }
        vaultIDs = try Self.vaultIDs(body)
        title = body["title"] == nil ? nil : .some(try body.string("title"))
        metadataPatch = try body.stringMap("metadata")
    }
}
