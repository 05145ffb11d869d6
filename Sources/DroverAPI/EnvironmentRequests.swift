import DroverCore

/// `POST /v1/environments`.
struct CreateEnvironmentRequest: APIRequestBody {
    let name: String
    let changes: UpdateEnvironmentRequest

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(EnvironmentResource.fields)
        guard let name = try body.string("name", required: true), !name.isEmpty else {
            throw APIError.invalid("name", "must be a non-empty string")
        }
        self.name = name
        changes = try UpdateEnvironmentRequest(body: body)
    }
}

/// `POST /v1/environments/{id}`: only what is given changes.
struct UpdateEnvironmentRequest: APIRequestBody {
    /// nil: unchanged (`null` leaves the name as it is).
    let name: String?
    /// nil: unchanged; `.some(nil)`: cleared.
    let description: String??
    /// The config resolved to the SDK's full `cloud` shape, once checked against what the
    /// sandboxes honour.
    let config: JSONValue?
    /// Keys to set, and keys to delete (`null`).
    let metadataPatch: [String: JSONValue]?
    let scope: String?

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(EnvironmentResource.fields)
        name = try body.string("name")
        if let name, name.isEmpty { throw APIError.invalid("name", "must be a non-empty string") }
        description = body["description"] == nil ? nil : .some(try body.string("description"))
        config = body["config"] == nil ? nil : try EnvironmentResource.config(body["config"])
        metadataPatch = try body.stringMap("metadata")
        scope = try body.string("scope")
        if let scope, scope != "organization" && scope != "account" {
            throw APIError.invalid("scope", "'\(scope)' is not organization or account")
        }
    }
}
