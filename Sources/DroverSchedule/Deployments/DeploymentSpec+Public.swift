import DroverBrain
import DroverCore
import Foundation

/// What an HTTP API needs to create and change deployments outside `drover apply`.
extension DeploymentSpec {
    public init(
        agentID: String, agentVersion: Int, agent: JSONValue, agentSnapshot: AgentSnapshot, environment: JSONValue,
        initialEvents: [JSONValue], expression: String?, timezone: String?, jitterSeconds: Int = 0,
        description: String?, metadata: [String: String]
    ) {
        self.init(
            agentID: agentID, agentVersion: agentVersion, agent: agent, agentSnapshot: agentSnapshot, environment: environment,
            initialEvents: initialEvents, expression: expression, timezone: timezone, jitterSeconds: jitterSeconds,
            pausedInFile: false, description: description, metadata: metadata, sourceFile: nil)
    }

    /// The stored form (`DeploymentRow.spec`).
    public var encoded: String { encodeSpec(self) }

    public static func decode(_ text: String) -> DeploymentSpec? { decodeSpec(text) }
}
