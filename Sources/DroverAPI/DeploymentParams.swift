import DroverBrain
import DroverCore
import DroverSchedule
import Foundation

/// Reading and checking `/v1/deployments` request bodies and query filters, each error a 400
/// naming the field and the fix.
enum DeploymentParams {
    /// The `spec_hash` of a deployment written through the API. It never equals a schedule
    /// file's hash, so `drover apply` puts a file's deployment edited through the API back to the file.
    static let apiSpecHash = "api"

    struct Schedule: Equatable {
        let expression: String
        let timezone: String
        var json: JSONValue { .object(["type": "cron", "expression": .string(expression), "timezone": .string(timezone)]) }
    }

    static func name(_ params: [String: JSONValue]) throws -> String {
        guard let name = try params.string("name", required: true, nullable: false), !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw APIError.invalid("name", "must not be empty", fix: "give the deployment a name, e.g. \"nightly-digest\"")
        }
        guard name.count <= 256 else { throw APIError.invalid("name", "is over 256 characters", fix: "use a shorter name") }
        return name
    }

    /// `schedule`: null (manual runs only) or `{"type": "cron", "expression", "timezone"}`, checked
    /// with the scheduler's own `CronExpression`.
    static func schedule(_ value: JSONValue?) throws -> Schedule? {
        guard let value, value != .null else { return nil }
        guard case .object(let fields) = value else {
            throw APIError.invalid(
                "schedule", "must be an object or null, got \(value.kindName)",
                fix: "send {\"type\": \"cron\", \"expression\": \"0 9 * * 1-5\", \"timezone\": \"UTC\"}")
        }
        try fields.rejectUnknown(["type", "expression", "timezone"])
        guard fields["type"]?.stringValue == "cron" else {
            throw APIError.invalid("schedule.type", "'\(fields["type"]?.stringValue ?? "")' is not supported", fix: "use \"cron\"")
        }
        guard let expression = try? fields.string("expression", required: true) else {
            throw APIError.invalid(
                "schedule.expression", "the field is required and must be a string", fix: "send a 5-field cron, e.g. \"0 9 * * 1-5\"")
        }
        guard let timezone = try? fields.string("timezone", required: true) else {
            throw APIError.invalid(
                "schedule.timezone", "the field is required and must be a string", fix: "send an IANA timezone, e.g. \"UTC\" or \"Europe/Berlin\"")
        }
        // As in the SDK: 5 fields only, no @daily shortcuts.
        if expression.trimmingCharacters(in: .whitespaces).hasPrefix("@") {
            throw APIError.invalid(
                "schedule.expression", "'\(expression)' is a shortcut; the API takes 5 fields", fix: "write 5 fields, e.g. \"0 0 * * *\" for @daily")
        }
        do throws(FieldError) {
            _ = try CronExpression(expression, timeZone: timezone)
        } catch {
            if error.field == "timezone" { throw APIError.invalid("schedule.timezone", error.message, fix: error.fix) }
            let part = error.field == "expression" ? "" : "the \(error.field ?? "") field: "
            throw APIError.invalid("schedule.expression", part + error.message, fix: error.fix)
        }
        return Schedule(expression: expression.trimmingCharacters(in: .whitespaces), timezone: timezone)
    }

    /// `initial_events`: 1 to 50 client events, checked as a session's events are.
    static func initialEvents(_ params: [String: JSONValue]) throws -> [JSONValue] {
        guard let events = try params.array("initial_events") else {
            throw APIError.invalid(
                "initial_events", "the field is required",
                fix: "send at least one event, e.g. [{\"type\": \"user.message\", \"content\": [{\"type\": \"text\", \"text\": \"...\"}]}]")
        }
        guard (1...50).contains(events.count) else {
            throw APIError.invalid(
                "initial_events", "has \(events.count) events; a deployment takes 1 to 50", fix: "send at least one and at most 50 events")
        }
        _ = try parseClientEvents(JSONValue.object(["events": .array(events)]).compactJSON, field: "initial_events")
        return events
    }

    /// An ISO 8601 time in a query filter.
    static func date(_ input: RequestInput, _ name: String) throws -> Date? {
        guard let text = input.string(name) else { return nil }
        let plain = ISO8601DateFormatter()
        guard let date = ISO8601DateFormatter.withFractions.date(from: text) ?? plain.date(from: text) else {
            throw APIError.invalid(name, "'\(text.prefix(40))' is not an ISO 8601 time", fix: "send for example 2026-01-31T09:00:00Z")
        }
        return date
    }

    static func date(_ stamp: JSONValue?) -> Date? {
        guard let text = stamp?.stringValue else { return nil }
        return ISO8601DateFormatter.withFractions.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// A new deployment's stored resource; `DeploymentStore.resource` adds the live parts.
    static func resource(id: String, name: String, spec: DeploymentSpec, environmentID: String, createdAt: String) -> JSONValue {
        let schedule = zip(spec.expression, spec.timezone).map { Schedule(expression: $0, timezone: $1).json } ?? .null
        return .object([
            "id": .string(id), "type": "deployment", "name": .string(name),
            "description": spec.description.map(JSONValue.string) ?? .null,
            "agent": spec.agent, "environment_id": .string(environmentID),
            "initial_events": .array(spec.initialEvents), "metadata": .object(spec.metadata.mapValues(JSONValue.string)),
            "resources": .array([]), "vault_ids": .array((spec.vaultIDs ?? []).map(JSONValue.string)), "schedule": schedule,
            "created_at": .string(createdAt), "updated_at": .string(createdAt), "archived_at": .null,
        ])
    }
}

/// Both present, or nil.
private func zip<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}

extension JSONValue {
    /// A metadata object as strings.
    var stringMap: [String: String] {
        (objectValue ?? [:]).compactMapValues(\.stringValue)
    }
}
