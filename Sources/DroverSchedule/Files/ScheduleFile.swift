import DroverBrain
import DroverCore
import DroverHands
import DroverSessionLog
import Foundation
import Yams

/// One `Schedules/*.yaml` file: a deployment to keep, with its agent, environment, initial
/// events and cron schedule. The format is documented in `Schedules/README.md`.
public struct ScheduleFile: Sendable, Equatable {
    public var file: String
    public var name: String
    public var description: String?
    /// The agent as written (the SDK's agent create-params shape).
    public var agent: JSONValue
    /// What sessions created from it run.
    public var agentSnapshot: AgentSnapshot
    /// `{"name": ..., "config": ...}`: a named environment, optionally with its config inline.
    public var environment: JSONValue
    /// Events sent to each session right after it is created (the SDK's deployment initial events).
    public var initialEvents: [JSONValue]
    public var schedule: CronExpression?
    public var jitterSeconds: Int
    public var paused: Bool
    public var metadata: [String: String]

    static let fields = ["name", "description", "agent", "environment", "initial_events", "schedule", "jitter_seconds", "paused", "metadata"]
    static let initialEventTypes = ["user.message", "user.define_outcome", "system.message"]
    public static let maximumJitterSeconds = 3600

    public static func load(_ path: String) throws(ScheduleFileError) -> ScheduleFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ScheduleFileError(file: path, line: nil, field: nil, message: "cannot be read (\(error.localizedDescription))", fix: "check the path")
        }
        return try parse(text, file: path)
    }

    /// Every `*.yaml` and `*.yml` file in `directory`, sorted by path. Two files with one name
    /// are an error, since the name is what `apply` matches deployments by.
    public static func loadDirectory(_ directory: String) throws(ScheduleFileError) -> [ScheduleFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ScheduleFileError(file: directory, line: nil, field: nil, message: "is not a readable directory", fix: "pass a directory of schedule files, e.g. Schedules/")
        }
        var files: [ScheduleFile] = []
        for name in names.sorted() where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
            // The path as the user wrote it, so errors point where they look.
            let file = try load(directory.hasSuffix("/") ? directory + name : directory + "/" + name)
            if let other = files.first(where: { $0.name == file.name }) {
                throw ScheduleFileError(file: file.file, line: nil, field: "name", message: "'\(file.name)' is also the name in \(other.file)",
                                        fix: "give each schedule its own name")
            }
            files.append(file)
        }
        return files
    }

    public static func parse(_ text: String, file: String) throws(ScheduleFileError) -> ScheduleFile {
        let composed: Node?
        do {
            composed = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        } catch {
            throw ScheduleFileError(file: file, line: nil, field: nil, message: "is not valid YAML (\(error))", fix: "check the indentation and quoting")
        }
        guard let composed else {
            throw ScheduleFileError(file: file, line: 1, field: nil, message: "is empty", fix: "write a schedule; see Schedules/README.md")
        }
        let root = YAMLNode(node: composed, file: file, path: "")
        guard composed.mapping != nil else {
            throw root.error("the file must be a mapping of fields", fix: "start with name:, agent:, initial_events: and schedule: (see Schedules/README.md)", field: "file")
        }
        try root.onlyKeys(fields)

        let nameNode = try root.required("name", fix: "add name: my-schedule (letters, digits, '-' and '_')")
        let name = try nameNode.string(fix: "write the name as a string")
        guard SafeName.allows(name, maxLength: 64) else {
            throw nameNode.error("'\(name)' is not a usable name", fix: "use 1 to 64 letters, digits, '-' and '_'")
        }
        let description = try root.child("description")?.string(fix: "write the description as a string")

        let agentNode = try root.required("agent", fix: "add agent: with at least model: (the SDK's agent create-params shape)")
        guard agentNode.node.mapping != nil else {
            throw agentNode.error("must be an inline agent (a mapping)", fix: "write agent: {model: claude-sonnet-4-5, system: ..., tools: [...]}")
        }
        var agent = try agentNode.json()
        let snapshot: AgentSnapshot
        do throws(FieldError) {
            snapshot = try AgentParams.fileAgent(agent)
        } catch {
            throw agentNode.error(for: error)
        }
        if case .object(var fields) = agent, fields["name"] == nil {
            fields["name"] = .string(name)
            agent = .object(fields)
        }

        let environment = try self.environment(root.child("environment"))

        let eventsNode = try root.required("initial_events", fix: "add initial_events: with at least one user.message")
        let events = try eventsNode.items(fix: "list events, e.g. - {type: user.message, content: [{type: text, text: ...}]}")
        guard (1...50).contains(events.count) else {
            throw eventsNode.error("has \(events.count) events; 1 to 50 are allowed", fix: "send between 1 and 50 initial events")
        }
        var initialEvents: [JSONValue] = []
        for event in events {
            let type = try event.required("type", fix: "set type to one of \(initialEventTypes.joined(separator: ", "))").string(fix: "write the type as a string")
            guard initialEventTypes.contains(type) else {
                throw event.error("'\(type)' cannot start a deployment's session", fix: "use one of \(initialEventTypes.joined(separator: ", "))")
            }
            let json = try event.json()
            let text = String(decoding: try JSONValue.array([json]).encoded(), as: UTF8.self)
            do throws(SessionLogError) {
                _ = try NewEvent.parseClientEvents(text)
            } catch {
                throw event.error("\(error.description.replacingOccurrences(of: "events[0]", with: event.path))", fix: error.fix ?? "follow the SDK's shape for \(type)")
            }
            initialEvents.append(json)
        }

        var schedule: CronExpression?
        if let scheduleNode = root.child("schedule"), scheduleNode.node.null == nil {
            try scheduleNode.onlyKeys(["type", "expression", "timezone"])
            let type = try scheduleNode.required("type", fix: "write type: cron").string(fix: "write type: cron")
            guard type == "cron" else { throw scheduleNode.error("type '\(type)' is not supported", fix: "write type: cron") }
            let expression = try scheduleNode.required("expression", fix: "write expression: \"0 9 * * 1-5\" (5 fields, quoted)")
            let timezone = try scheduleNode.required("timezone", fix: "write timezone: UTC, or an IANA name such as Europe/Berlin")
            let zoneName = try timezone.string(fix: "write an IANA timezone name such as Europe/Berlin")
            guard TimeZone(identifier: zoneName) != nil else {
                throw timezone.error("'\(zoneName)' is not an IANA timezone", fix: "use a name from the IANA database, e.g. UTC, America/New_York or Europe/Berlin")
            }
            let expressionText = try expression.string(fix: "quote the expression, e.g. \"*/5 * * * *\"")
            do throws(FieldError) {
                schedule = try CronExpression(expressionText, timeZone: zoneName)
            } catch {
                let message = error.field == "expression" ? error.message : "\(error.field ?? "") field: \(error.message)"
                throw expression.error(message, fix: error.fix ?? "")
            }
        }

        var jitter = 0
        if let jitterNode = root.child("jitter_seconds") {
            guard let value = jitterNode.node.int, (0...maximumJitterSeconds).contains(value) else {
                throw jitterNode.error("must be a whole number of seconds from 0 to \(maximumJitterSeconds)", fix: "write e.g. jitter_seconds: 30")
            }
            jitter = value
        }
        var paused = false
        if let pausedNode = root.child("paused") {
            guard let value = pausedNode.node.bool else { throw pausedNode.error("must be true or false", fix: "write paused: true or paused: false") }
            paused = value
        }
        var metadata: [String: String] = [:]
        if let metadataNode = root.child("metadata") {
            guard case .object(let fields) = try metadataNode.json(), fields.count <= 16 else {
                throw metadataNode.error("must be a mapping of at most 16 string pairs", fix: "write metadata: {team: research}")
            }
            for (key, value) in fields {
                guard case .string(let text) = value, key.count <= 64, text.count <= 512 else {
                    throw metadataNode.error("'\(key)' must map to a string (keys up to 64, values up to 512 characters)", fix: "quote the value")
                }
                metadata[key] = text
            }
        }
        return ScheduleFile(
            file: file, name: name, description: description, agent: agent, agentSnapshot: snapshot,
            environment: environment, initialEvents: initialEvents, schedule: schedule,
            jitterSeconds: jitter, paused: paused, metadata: metadata)
    }

    private static func environment(_ node: YAMLNode?) throws(ScheduleFileError) -> JSONValue {
        guard let node, node.node.null == nil else { return .object(["name": .string("default")]) }
        if node.node.mapping == nil {
            return .object(["name": .string(try node.string(fix: "name an environment, or write it inline as {name: ..., config: {...}}"))])
        }
        try node.onlyKeys(["name", "config", "description"])
        _ = try node.required("name", fix: "name the inline environment, e.g. name: research")
        let environment = try node.json()
        // What the sandboxes cannot honour yet is refused here, not discovered at the first fire.
        do {
            _ = try EnvironmentConfig.parse(environment.objectValue?["config"])
        } catch let notBuilt as EnvironmentConfig.NotBuiltYet {
            throw node.error("\(notBuilt.field): \(notBuilt.detail)", fix: "see README.md, The hands: Environments", field: "environment.\(notBuilt.field)")
        } catch {
            throw node.error("\(error)", fix: "write config as the SDK's BetaCloudConfig: {type: cloud, packages: {pip: [...]}}", field: "environment.config")
        }
        return environment
    }

    private static func yamlError(_ error: YamlError, file: String) -> ScheduleFileError {
        var line: Int?
        var problem = "\(error)"
        switch error {
        case .scanner(let context, let text, let mark, _), .parser(let context, let text, let mark, _), .composer(let context, let text, let mark, _):
            line = mark.line
            problem = "\(context.map { "\($0.text) " } ?? "")\(text)"
        default:
            break
        }
        return ScheduleFileError(file: file, line: line, field: nil, message: "is not valid YAML: \(problem)",
                                 fix: "check the indentation and quoting near that line (quote cron expressions)")
    }
}

extension JSONValue {
    func encoded() throws(ScheduleFileError) -> Data {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return try encoder.encode(self)
        } catch {
            throw ScheduleFileError(file: "", line: nil, field: nil, message: "cannot be encoded as JSON", fix: "check the values")
        }
    }
}
