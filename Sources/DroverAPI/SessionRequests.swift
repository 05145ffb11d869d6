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
    /// Vaults are not built: a session (or a deployment's sessions) may not name any.
    static func refuseVaults(_ body: [String: JSONValue]) throws {
        if let vaults = try body.array("vault_ids"), !vaults.isEmpty {
            throw APIError.invalid("vault_ids", "vaults are not built yet in Drover", fix: "omit vault_ids")
        }
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

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        agent = body["agent"]
        guard let environmentID = try body.string("environment_id", required: true) else {
            throw APIError.invalid("environment_id", "the field is required")
        }
        self.environmentID = environmentID
        try Self.refuseVaults(body)
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

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        for unbuilt in ["agent", "budget"] where body[unbuilt] != nil && body[unbuilt] != .null {
            throw APIError.invalid(unbuilt, "updating a session's \(unbuilt) is not built yet in Drover", fix: "omit \(unbuilt)")
        }
        try Self.refuseVaults(body)
        title = body["title"] == nil ? nil : .some(try body.string("title"))
        metadataPatch = try body.stringMap("metadata")
    }
}
