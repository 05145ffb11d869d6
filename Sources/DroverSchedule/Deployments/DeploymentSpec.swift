import DroverBrain
import DroverCore
import Foundation

/// What Drover keeps beside a deployment's SDK resource in order to fire it.
public struct DeploymentSpec: Sendable, Codable, Equatable {
    public var agentID: String
    public var agentVersion: Int
    /// The agent as written in the schedule file (SDK agent create-params shape).
    public var agent: JSONValue
    public var agentSnapshot: AgentSnapshot
    public var environment: JSONValue
    public var initialEvents: [JSONValue]
    public var expression: String?
    public var timezone: String?
    public var jitterSeconds: Int
    public var pausedInFile: Bool
    public var description: String?
    public var metadata: [String: String]
    /// The file it was applied from; `apply` archives only deployments that came from files.
    public var sourceFile: String?
    /// The vaults the sessions it fires may use (`vault_ids`); nil in specs stored before them.
    public var vaultIDs: [String]?
    /// Set when each fire starts a batch of this job instead of one session.
    public var job: ScheduledJob?

    enum CodingKeys: String, CodingKey {
        case agentID = "agent_id", agentVersion = "agent_version", agent, agentSnapshot = "agent_snapshot", environment
        case initialEvents = "initial_events", expression, timezone, jitterSeconds = "jitter_seconds"
        case pausedInFile = "paused_in_file", description, metadata, sourceFile = "source_file", vaultIDs = "vault_ids", job
    }

    public func cron() -> CronExpression? {
        guard let expression, let timezone else { return nil }
        return try? CronExpression(expression, timeZone: timezone)
    }

    /// The fire delay of this deployment: the same every time, spread across deployments.
    public static func jitter(deploymentID: String, maximum: Int) -> Int {
        guard maximum > 0 else { return 0 }
        return Int(FNV1a.hash(deploymentID) % UInt64(maximum + 1))
    }
}

enum Timestamp {
    static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func seconds(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }
}

func encodeSpec(_ spec: DeploymentSpec) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? encoder.encode(spec)) ?? Data("{}".utf8), as: UTF8.self)
}

func decodeSpec(_ text: String) -> DeploymentSpec? {
    try? JSONDecoder().decode(DeploymentSpec.self, from: Data(text.utf8))
}
