import DroverCore

/// `POST /v1/deployments`.
struct CreateDeploymentRequest: APIRequestBody {
    static let fields: Set<String> = [
        "agent", "budget", "description", "environment_id", "initial_events", "metadata", "name", "resources", "schedule", "vault_ids",
    ]

    let name: String
    /// An agent id (its latest version) or `{"type": "agent", "id", "version"}`, resolved by
    /// `ResourceLookup`.
    let agent: JSONValue?
    let environmentID: String
    let initialEvents: [JSONValue]
    /// nil: manual runs only.
    let schedule: DeploymentParams.Schedule?
    let metadata: JSONValue
    let description: String?
    /// The vaults every session the deployment fires may use.
    let vaultIDs: [String]

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        try Self.refuseUnbuilt(body)
        vaultIDs = try Self.vaultIDs(body) ?? []
        name = try DeploymentParams.name(body)
        agent = body["agent"]
        guard let environmentID = try body.string("environment_id", required: true, nullable: false) else {
            throw APIError.invalid("environment_id", "the field is required")
        }
        self.environmentID = environmentID
        initialEvents = try DeploymentParams.initialEvents(body)
        schedule = try DeploymentParams.schedule(body["schedule"])
        metadata = try body.stringMap("metadata").map { try patchMetadata(nil, $0) } ?? .object([:])
        description = try body.string("description").flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// `POST /v1/deployments/{id}`: only what is given changes.
struct UpdateDeploymentRequest: APIRequestBody {
    static let fields = CreateDeploymentRequest.fields

    let name: String?
    /// nil: unchanged; `.some(nil)`: cleared (an empty description clears it too).
    let description: String??
    let agent: JSONValue?
    let environmentID: String?
    let initialEvents: [JSONValue]?
    /// Keys to set, and keys to delete (`null`).
    let metadataPatch: [String: JSONValue]?
    /// nil: unchanged; `.some(nil)`: manual runs only from now on.
    let schedule: DeploymentParams.Schedule??
    /// nil: unchanged.
    let vaultIDs: [String]?

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(Self.fields)
        try Self.refuseUnbuilt(body)
        vaultIDs = try Self.vaultIDs(body)
        name = body["name"] == nil ? nil : try DeploymentParams.name(body)
        description = body["description"] == nil ? nil : .some(try body.string("description").flatMap { $0.isEmpty ? nil : $0 })
        agent = body["agent"]
        if body["environment_id"] != nil {
            guard let id = try body.string("environment_id", nullable: false) else { throw APIError.invalid("environment_id", "cannot be cleared") }
            environmentID = id
        } else {
            environmentID = nil
        }
        initialEvents = body["initial_events"] == nil ? nil : try DeploymentParams.initialEvents(body)
        metadataPatch = try body.stringMap("metadata")
        schedule = body["schedule"] == nil ? nil : .some(try DeploymentParams.schedule(body["schedule"]))
    }
}

extension APIRequestBody {
    /// The parts of a deployment the SDK has and Drover does not build yet: refused rather than
    /// ignored, as a session's are.
    static func refuseUnbuilt(_ body: [String: JSONValue]) throws {
        if let resources = try body.array("resources"), !resources.isEmpty {
            throw APIError.invalid("resources", "session resources (files, repositories) are not built yet in Drover", fix: "omit resources")
        }
        try refuseBudget(body)
    }
}
