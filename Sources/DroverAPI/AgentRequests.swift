import DroverBrain
import DroverCore

/// `POST /v1/agents`: read by `AgentParams`, the check that job and schedule files share.
struct CreateAgentRequest: APIRequestBody {
    let agent: AgentParams

    init(body: [String: JSONValue]) throws {
        agent = try AgentParams.creating(body)
    }
}

/// `POST /v1/agents/{id}`: the fields that change, and the version the client last saw.
struct UpdateAgentRequest: APIRequestBody {
    /// With it, the update is refused with 409 unless that is still the current version.
    let version: Int?
    let changes: AgentParams

    init(body: [String: JSONValue]) throws {
        try body.rejectUnknown(AgentParams.updateFields)
        version = try body.version("version", named: "version", nullable: false)
        var changes = body
        changes.removeValue(forKey: "version")
        self.changes = try AgentParams(changes)
    }
}
