import DroverCore

extension ControlPlaneStore {
    /// The environment `config` a new session is created with: the environment's own, and for a
    /// self-hosted one its id as well, which routes the session's toolset calls to that
    /// environment's workers. The API's sessions and the scheduler's both take it from here.
    public static func sessionEnvironmentConfig(_ environment: Row) -> JSONValue? {
        sessionEnvironmentConfig(id: environment.id, resource: environment.resource)
    }

    /// The same for an environment's id and stored resource.
    public static func sessionEnvironmentConfig(id: String, resource: String) -> JSONValue? {
        let config = (try? JSONValue.parse(resource))?.objectValue?["config"]
        guard case .object(var fields)? = config else { return config }
        if fields["type"]?.stringValue == "self_hosted" { fields["environment_id"] = .string(id) }
        return .object(fields)
    }
}
