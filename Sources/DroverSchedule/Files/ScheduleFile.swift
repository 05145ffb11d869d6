import DroverBrain
import DroverCore
import DroverHands
import DroverJobs
import DroverSessionLog
import DroverTools
import Foundation

/// One `Schedules/*.yaml` file: a deployment to keep, with its agent, environment, initial
/// events and cron schedule. The format is documented in `Schedules/README.md`.
public struct ScheduleFile: Sendable, Equatable, Decodable {
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
    public var jitterSeconds = 0
    public var paused = false
    public var metadata: [String: String] = [:]
    /// With `job:`, each occurrence starts a batch of that job instead of one session.
    public var job: ScheduledJob?
    /// `job:` as written: a path (relative to the schedule file) or a name in the job catalog.
    var jobReference: String?
    var overlap = ScheduledJob.Overlap.skip

    static let initialEventTypes = ["user.message", "user.define_outcome", "system.message"]
    public static let maximumJitterSeconds = 3600

    /// `jobCatalog`: the jobs `drover apply Jobs/` saw (name to file), for `job: NAME`.
    public static func load(_ path: String, jobCatalog: [String: String] = [:]) throws(ScheduleFileError) -> ScheduleFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ScheduleFileError(
                file: path, line: nil, field: nil, message: "cannot be read (\(error.localizedDescription))", fix: "check the path")
        }
        return try parse(text, file: path, jobCatalog: jobCatalog)
    }

    /// Every `*.yaml` and `*.yml` file in `directory`, sorted by path. Two files with one name
    /// are an error, since the name is what `apply` matches deployments by.
    public static func loadDirectory(_ directory: String, jobCatalog: [String: String] = [:]) throws(ScheduleFileError) -> [ScheduleFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ScheduleFileError(
                file: directory, line: nil, field: nil, message: "is not a readable directory",
                fix: "pass a directory of schedule files, e.g. Schedules/")
        }
        var files: [ScheduleFile] = []
        for name in names.sorted() where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
            // The path as the user wrote it, so errors point where they look.
            let file = try load(directory.hasSuffix("/") ? directory + name : directory + "/" + name, jobCatalog: jobCatalog)
            if let other = files.first(where: { $0.name == file.name }) {
                throw ScheduleFileError(
                    file: file.file, line: nil, field: "name", message: "'\(file.name)' is also the name in \(other.file)",
                    fix: "give each schedule its own name")
            }
            files.append(file)
        }
        return files
    }

    public static func parse(_ text: String, file: String, jobCatalog: [String: String] = [:]) throws(ScheduleFileError) -> ScheduleFile {
        var parsed = try SourceFileDecoder.decode(
            ScheduleFile.self, from: text, file: file,
            emptyFix: "write a schedule: name:, agent:, initial_events: and schedule: (see Schedules/README.md)")
        parsed.file = file
        if let reference = parsed.jobReference { try parsed.resolveJob(reference, text: text, catalog: jobCatalog) }
        return parsed
    }

    /// Finds and checks the job a `job:` schedule starts, now rather than at its first fire:
    /// a path is relative to the schedule file; a bare name is looked up in the job catalog.
    private mutating func resolveJob(_ reference: String, text: String, catalog: [String: String]) throws(ScheduleFileError) {
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.hasPrefix("job:") }.map { $0 + 1 }
        func problem(_ message: String, fix: String) -> ScheduleFileError {
            ScheduleFileError(file: file, line: line, field: "job", message: message, fix: fix)
        }
        let path: String
        if reference.contains("/") || reference.hasSuffix(".yaml") || reference.hasSuffix(".yml") {
            let directory = URL(fileURLWithPath: file).deletingLastPathComponent()
            path = URL(fileURLWithPath: reference, relativeTo: directory).standardizedFileURL.path
        } else if let found = catalog[reference] {
            path = URL(fileURLWithPath: found).standardizedFileURL.path
        } else {
            throw problem(
                "no job named '\(reference)' is in the catalog",
                fix: "run `drover apply Jobs/` first, or give the job file's path, such as ../Jobs/\(reference).yaml")
        }
        let spec: JobSpec
        do {
            spec = try JobFileParser.load(path: path)
        } catch {
            throw problem("\(error)", fix: "fix the job file; `drover run` shows the same error")
        }
        guard case .inline(let agent) = spec.agent else {
            throw problem(
                "the job's agent is a stored one, which a schedule cannot start yet", fix: "write the agent inline in \(spec.file.path)")
        }
        do throws(FieldError) {
            agentSnapshot = try AgentParams.fileAgent(agent)
        } catch {
            throw problem("the job's agent: \(error)", fix: "fix the job file")
        }
        // The deployment's agent resource needs a name, as a session schedule's gets its own.
        self.agent = Self.named(agent, spec.name)
        job = ScheduledJob(file: spec.file.path, name: spec.name, overlap: overlap)
    }

    enum Keys: String, CodingKey, CaseIterable {
        case name, description, agent, environment
        case initialEvents = "initial_events", schedule
        case jitterSeconds = "jitter_seconds", paused, metadata, job, overlap
    }

    public init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        file = ""
        name = try fields.require(String.self, .name, fix: "add name: my-schedule (letters, digits, '-' and '_')")
        guard SafeName.allows(name, maxLength: 64) else {
            throw decoder.problem(Keys.name, "'\(name)' is not a usable name", fix: "use 1 to 64 letters, digits, '-' and '_'")
        }
        description = try fields.decodeIfPresent(String.self, forKey: .description)

        jobReference = try fields.decodeIfPresent(String.self, forKey: .job)
        if let overlapText = try fields.decodeIfPresent(String.self, forKey: .overlap) {
            guard jobReference != nil else {
                throw decoder.problem(Keys.overlap, "applies only to a schedule with `job:`", fix: "remove overlap:, or add job:")
            }
            guard let value = ScheduledJob.Overlap(rawValue: overlapText) else {
                throw decoder.problem(
                    Keys.overlap, "'\(overlapText)' is not an overlap policy", fix: "use skip (the default), queue or allow")
            }
            overlap = value
        }
        if jobReference != nil {
            // The job says what each item's session is: the schedule only says when.
            for key in [Keys.agent, .initialEvents, .environment] where fields.contains(key) {
                throw decoder.problem(
                    key, "is the job's to say in a schedule with `job:`", fix: "remove \(key.stringValue): here, and set it in the job file")
            }
            agent = .null
            agentSnapshot = AgentSnapshot(model: "")
            environment = .object(["name": .string("default")])
            initialEvents = []
            try decodeCommon(fields, decoder: decoder)
            return
        }
        let agentFix = "add agent: with at least model: (the SDK's agent create-params shape), or job: with a job file"
        if fields.contains(.agent), !fields.isMapping(.agent), try !fields.decodeNil(forKey: .agent) {
            throw decoder.problem(
                Keys.agent, "must be an inline agent (a mapping)", fix: "write agent: {model: claude-sonnet-4-5, system: ..., tools: [...]}")
        }
        agent = try fields.require(JSONValue.self, .agent, fix: agentFix)
        do throws(FieldError) {
            agentSnapshot = try AgentParams.fileAgent(agent)
        } catch {
            throw SourceFileProblem(error, under: fields.codingPath + [Keys.agent])
        }
        agent = Self.named(agent, name)

        environment = try Self.environment(fields)
        initialEvents = try Self.initialEvents(fields)
        try decodeCommon(fields, decoder: decoder)
    }

    /// The fields every schedule has, whether it starts a session or a job.
    private mutating func decodeCommon(_ fields: KeyedDecodingContainer<Keys>, decoder: any Decoder) throws {
        schedule = try fields.decodeIfPresent(ScheduleField.self, forKey: .schedule)?.expression

        jitterSeconds = 0
        if fields.contains(.jitterSeconds) {
            guard let value = try? fields.decode(Int.self, forKey: .jitterSeconds), (0...Self.maximumJitterSeconds).contains(value) else {
                throw decoder.problem(
                    Keys.jitterSeconds, "must be a whole number of seconds from 0 to \(Self.maximumJitterSeconds)",
                    fix: "write e.g. jitter_seconds: 30")
            }
            jitterSeconds = value
        }
        paused = try fields.decodeIfPresent(Bool.self, forKey: .paused) ?? false
        metadata = [:]
        if fields.contains(.metadata) {
            let invalid = decoder.problem(Keys.metadata, "must be a mapping of at most 16 string pairs", fix: "write metadata: {team: research}")
            guard case .object(let pairs)? = try? fields.decode(JSONValue.self, forKey: .metadata), pairs.count <= 16 else { throw invalid }
            for (key, value) in pairs {
                guard case .string(let text) = value, key.count <= 64, text.count <= 512 else {
                    throw decoder.problem(
                        Keys.metadata, "'\(key)' must map to a string (keys up to 64, values up to 512 characters)", fix: "quote the value")
                }
                metadata[key] = text
            }
        }
    }

    /// The agent, named `name` unless it names itself: its stored resource needs a name.
    static func named(_ agent: JSONValue, _ name: String) -> JSONValue {
        guard case .object(var object) = agent, object["name"] == nil else { return agent }
        object["name"] = .string(name)
        return .object(object)
    }

    private static func environment(_ fields: KeyedDecodingContainer<Keys>) throws -> JSONValue {
        guard fields.contains(.environment), try !fields.decodeNil(forKey: .environment) else { return .object(["name": .string("default")]) }
        if !fields.isMapping(.environment) {
            return .object(["name": .string(try fields.decode(String.self, forKey: .environment))])
        }
        enum EnvironmentKeys: String, CodingKey, CaseIterable { case name, config, description }
        let inline = try fields.nestedContainer(keyedBy: EnvironmentKeys.self, forKey: .environment)
        _ = try inline.require(String.self, .name, fix: "name the inline environment, e.g. name: research")
        let environment = try fields.decode(JSONValue.self, forKey: .environment)
        let at = fields.codingPath + [Keys.environment]
        // What the sandboxes cannot honour yet is refused here, not discovered at the first fire.
        do {
            _ = try EnvironmentConfig.parse(environment.objectValue?["config"])
        } catch let notBuilt as EnvironmentConfig.NotBuiltYet {
            throw SourceFileProblem(
                at: at + FieldPathKey.keys(of: notBuilt.field), "\(notBuilt.field): \(notBuilt.detail)", fix: "see README.md, The hands: Environments"
            )
        } catch {
            throw SourceFileProblem(
                at: at + [FieldPathKey("config")], "\(error)", fix: "write config as the SDK's BetaCloudConfig: {type: cloud, packages: {pip: [...]}}"
            )
        }
        return environment
    }

    private static func initialEvents(_ fields: KeyedDecodingContainer<Keys>) throws -> [JSONValue] {
        let events = try fields.require([InitialEvent].self, .initialEvents, fix: "add initial_events: with at least one user.message")
        guard (1...50).contains(events.count) else {
            throw SourceFileProblem(
                at: fields.codingPath + [Keys.initialEvents], "has \(events.count) events; 1 to 50 are allowed",
                fix: "send between 1 and 50 initial events")
        }
        return events.map(\.json)
    }
}

/// One of a schedule's initial events: a type that may start a deployment's session, in the
/// shape the API accepts.
private struct InitialEvent: Decodable {
    enum Keys: String, CodingKey { case type }
    let json: JSONValue

    init(from decoder: any Decoder) throws {
        let types = ScheduleFile.initialEventTypes
        json = try decoder.singleValueContainer().decode(JSONValue.self)
        guard case .object(let fields) = json else {
            throw decoder.problem(nil, "must be a mapping", fix: "write each event as {type: user.message, content: [{type: text, text: ...}]}")
        }
        guard let type = fields["type"] else {
            throw decoder.problem(Keys.type, "is missing", fix: "set type to one of \(types.joined(separator: ", "))")
        }
        guard case .string(let name) = type else {
            throw decoder.problem(Keys.type, "must be a string", fix: "write the type as a string")
        }
        guard types.contains(name) else {
            throw decoder.problem(nil, "'\(name)' cannot start a deployment's session", fix: "use one of \(types.joined(separator: ", "))")
        }
        let path = WirePath.from(decoder.codingPath)
        do throws(SessionLogError) {
            _ = try NewEvent.parseClientEvents(JSONValue.array([json]).compactJSON)
        } catch {
            throw decoder.problem(
                nil, error.description.replacingOccurrences(of: "events[0]", with: path), fix: error.fix ?? "follow the SDK's shape for \(name)")
        }
    }
}

/// `schedule: {type: cron, expression: "...", timezone: ...}`.
private struct ScheduleField: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case type, expression, timezone }
    let expression: CronExpression

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        let type = try fields.require(String.self, .type, fix: "write type: cron")
        guard type == "cron" else { throw decoder.problem(nil, "type '\(type)' is not supported", fix: "write type: cron") }
        let text = try fields.require(String.self, .expression, fix: "write expression: \"0 9 * * 1-5\" (5 fields, quoted)")
        let zone = try fields.require(String.self, .timezone, fix: "write timezone: UTC, or an IANA name such as Europe/Berlin")
        guard TimeZone(identifier: zone) != nil else {
            throw decoder.problem(
                Keys.timezone, "'\(zone)' is not an IANA timezone",
                fix: "use a name from the IANA database, e.g. UTC, America/New_York or Europe/Berlin")
        }
        do throws(FieldError) {
            expression = try CronExpression(text, timeZone: zone)
        } catch {
            let message = error.field == "expression" ? error.message : "\(error.field ?? "") field: \(error.message)"
            throw decoder.problem(Keys.expression, message, fix: error.fix ?? "")
        }
    }
}
