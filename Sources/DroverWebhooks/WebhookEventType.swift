import Foundation

/// The webhook events Drover sends, named as the SDK's `BetaWebhookEventData` types name them.
/// An SDK type missing here (memory stores, vault credentials, threads, ...) is one Drover has
/// nothing to send for yet; `drover webhooks add` refuses it and says so.
public enum WebhookEventType: String, CaseIterable, Sendable {
    case sessionCreated = "session.created"
    case sessionUpdated = "session.updated"
    case sessionArchived = "session.archived"
    case sessionDeleted = "session.deleted"
    /// A turn started (the log's `session.status_running`).
    case sessionRunStarted = "session.status_run_started"
    /// The session went idle (`session.status_idle`), whatever the stop reason.
    case sessionIdled = "session.status_idled"
    /// It went idle waiting on the user: a tool confirmation or a custom tool's result.
    case sessionRequiresAction = "session.requires_action"
    case sessionRescheduled = "session.status_rescheduled"
    case sessionTerminated = "session.status_terminated"
    case agentCreated = "agent.created"
    case agentUpdated = "agent.updated"
    case agentArchived = "agent.archived"
    case agentDeleted = "agent.deleted"
    case environmentCreated = "environment.created"
    case environmentUpdated = "environment.updated"
    case environmentArchived = "environment.archived"
    case environmentDeleted = "environment.deleted"
    case deploymentCreated = "deployment.created"
    case deploymentUpdated = "deployment.updated"
    case deploymentArchived = "deployment.archived"
    case deploymentPaused = "deployment.paused"
    case deploymentUnpaused = "deployment.unpaused"
    /// A run began: its session or batch is being started.
    case deploymentRunStarted = "deployment_run.started"
    /// The run started its session or batch.
    case deploymentRunSucceeded = "deployment_run.succeeded"
    /// The run could not start one (its agent or environment archived, a launch error).
    case deploymentRunFailed = "deployment_run.failed"

    /// The event a session log event stands for, if any; idle gives two when the session waits
    /// on the user.
    public static func forLogEvent(type: String, stopReason: String?) -> [WebhookEventType] {
        switch type {
        case "session.status_running": return [.sessionRunStarted]
        case "session.status_idle": return stopReason == "requires_action" ? [.sessionIdled, .sessionRequiresAction] : [.sessionIdled]
        case "session.status_rescheduled": return [.sessionRescheduled]
        case "session.status_terminated": return [.sessionTerminated]
        default: return []
        }
    }

    /// Parses `--events`: names, or `*` for every event.
    public static func parseList(_ text: String) throws -> [String] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw WebhookError.invalid("--events", "no event named", fix: "name events, such as session.status_idled, or *") }
        for name in names where name != "*" && WebhookEventType(rawValue: name) == nil {
            throw WebhookError.invalid(
                "--events", "'\(name.prefix(60))' is not an event Drover sends",
                fix: "use * or some of: " + allCases.map(\.rawValue).joined(separator: ", "))
        }
        return names.contains("*") ? ["*"] : names
    }
}

public struct WebhookError: Error, CustomStringConvertible {
    public let description: String

    static func invalid(_ field: String, _ message: String, fix: String) -> WebhookError {
        WebhookError(description: "\(field): \(message). Fix: \(fix)")
    }
}
