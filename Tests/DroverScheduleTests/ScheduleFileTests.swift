import DroverSchedule
import DroverTesting
import Foundation
import Testing

@Suite("Schedule files")
struct ScheduleFileTests {
    static let good = """
        name: nightly
        agent:
          model: claude-sonnet-4-5
          system: Be brief.
          tools:
            - type: agent_toolset_20260401
              configs:
                - {name: bash, permission_policy: {type: always_ask}}
            - type: custom
              name: lookup
              description: Looks a word up.
              input_schema: {type: object, properties: {word: {type: string}}}
        environment: research
        initial_events:
          - type: user.message
            content:
              - {type: text, text: go}
        schedule:
          type: cron
          expression: "30 2 * * *"
          timezone: Europe/Berlin
        jitter_seconds: 60
        """

    @Test("a good file gives the agent snapshot, events and schedule")
    func good() throws {
        let file = try ScheduleFile.parse(Self.good, file: "Schedules/nightly.yaml")
        #expect(file.name == "nightly")
        #expect(file.agentSnapshot.model == "claude-sonnet-4-5")
        #expect(file.agentSnapshot.system == "Be brief.")
        #expect(file.agentSnapshot.toolset.asks("bash"))
        #expect(!file.agentSnapshot.toolset.asks("read"))
        #expect(file.agentSnapshot.customTools.map(\.name) == ["lookup"])
        #expect(file.schedule?.expression == "30 2 * * *")
        #expect(file.schedule?.timeZone.identifier == "Europe/Berlin")
        #expect(file.jitterSeconds == 60)
        #expect(file.initialEvents.count == 1)
        #expect(file.environment.objectValue?["name"]?.stringValue == "research")
    }

    @Test("job: starts a job: a path from the schedule file, or a catalog name; it takes the job's agent and forbids its own")
    func jobSchedules() throws {
        let root = projectRoot.appendingPathComponent("Schedules/any.yaml").path
        let byPath = try ScheduleFile.parse(
            "name: digest\njob: ../Jobs/wiki-digest.yaml\noverlap: queue\nschedule: {type: cron, expression: \"0 9 * * mon\", timezone: UTC}\n",
            file: root)
        #expect(byPath.job?.name == "wiki-digest" && byPath.job?.overlap == .queue)
        #expect(byPath.job?.file == projectRoot.appendingPathComponent("Jobs/wiki-digest.yaml").standardizedFileURL.path)
        #expect(byPath.agentSnapshot.system?.contains("course wiki") == true && byPath.initialEvents.isEmpty)
        let byName = try ScheduleFile.parse(
            "name: digest\njob: wiki-digest\n", file: root,
            jobCatalog: ["wiki-digest": projectRoot.appendingPathComponent("Jobs/wiki-digest.yaml").path])
        #expect(byName.job?.file == byPath.job?.file && byName.job?.overlap == .skip)
        #expect(byPath.agent.objectValue?["name"] == .string("wiki-drafter"))
        // A job's unnamed agent takes the job's name: the deployment's agent resource needs one.
        let folder = scratchDirectory("jobschedule")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("name: tiny\nagent: {model: claude-sonnet-4-5}\nitems: {list: [a]}\nprompt: hi\n".utf8).write(
            to: folder.appendingPathComponent("tiny.yaml"))
        let unnamed = try ScheduleFile.parse("name: tiny-daily\njob: tiny.yaml\n", file: folder.appendingPathComponent("tiny-daily.yaml").path)
        #expect(unnamed.agent.objectValue?["name"] == .string("tiny"))

        func problem(_ text: String, catalog: [String: String] = [:]) -> String {
            do {
                _ = try ScheduleFile.parse(text, file: root, jobCatalog: catalog)
                return "parsed"
            } catch {
                return error.description
            }
        }
        #expect(
            problem("name: digest\njob: wiki-digest\n").contains(
                "any.yaml:2: job: no job named 'wiki-digest' is in the catalog. Fix: run `drover apply Jobs/` first"))
        #expect(problem("name: digest\njob: ../Jobs/nope.yaml\n").contains("any.yaml:2: job:"))
        #expect(problem("name: digest\njob: ../Jobs/wiki-digest.yaml\nagent: {model: claude-sonnet-4-5}\n").contains("agent: is the job's to say"))
        #expect(problem("name: digest\njob: ../Jobs/wiki-digest.yaml\noverlap: sometimes\n").contains("'sometimes' is not an overlap policy"))
        #expect(problem(Self.good + "\noverlap: skip\n").contains("applies only to a schedule with `job:`"))
    }

    @Test("the shipped Schedules/ files load")
    func shipped() throws {
        let files = try ScheduleFile.loadDirectory(projectRoot.appendingPathComponent("Schedules").path)
        #expect(files.map(\.name) == ["nightly-research", "weekly-literature-review", "weekly-wiki-digest"])
        #expect(files.last?.paused == true)
    }

    @Test("bad files name the file, the line, the field and the fix")
    func badFiles() {
        func replacing(_ old: String, _ new: String) -> String { Self.good.replacingOccurrences(of: old, with: new) }
        let cases: [(String, String, [String])] = [
            ("malformed YAML", replacing("  system: Be brief.", "  system: [Be brief."), ["bad.yaml:", "is not valid YAML"]),
            ("unterminated quote", replacing("name: nightly", "name: \"nightly"), ["bad.yaml:", "not valid YAML"]),
            (
                "missing agent", replacing("agent:\n  model: claude-sonnet-4-5\n", "agentx:\n  model: claude-sonnet-4-5\n"),
                ["bad.yaml:2:", "agentx: is not a known field"]
            ),
            (
                "missing initial_events",
                String(
                    Self.good.split(separator: "\n").filter {
                        !$0.contains("initial_events") && !$0.contains("- type: user.message") && !$0.contains("content:")
                            && !$0.contains("{type: text, text: go}")
                    }.joined(separator: "\n")), ["bad.yaml:1:", "initial_events: is missing", "Fix:"]
            ),
            ("missing model", replacing("  model: claude-sonnet-4-5\n", ""), ["bad.yaml:3:", "agent.model: is missing"]),
            (
                "invalid cron", replacing("\"30 2 * * *\"", "\"61 2 * * *\""),
                ["bad.yaml:20:", "schedule.expression: minute field: 61 is out of range 0–59", "Fix:"]
            ),
            ("six fields", replacing("\"30 2 * * *\"", "\"0 30 2 * * *\""), ["bad.yaml:20:", "schedule.expression: '0 30 2 * * *' has 6 fields"]),
            (
                "unknown timezone", replacing("Europe/Berlin", "Europe/Atlantis"),
                ["bad.yaml:21:", "schedule.timezone: 'Europe/Atlantis' is not an IANA timezone"]
            ),
            ("bad event type", replacing("- type: user.message", "- type: agent.message"), ["bad.yaml:15:", "'agent.message' cannot start"]),
            ("bad jitter", replacing("jitter_seconds: 60", "jitter_seconds: soon"), ["bad.yaml:22:", "jitter_seconds: must be a whole number"]),
            ("bad name", replacing("name: nightly", "name: night ly"), ["bad.yaml:1:", "'night ly' is not a usable name"]),
            // The agent is checked by the API's own agent check, pointed at the line.
            ("bad tool type", replacing("- type: custom", "- type: custon"), ["bad.yaml:9:", "agent.tools[1].type: 'custon' is not a tool type"]),
            (
                "misspelt agent field", replacing("  system: Be brief.", "  sytem: Be brief."),
                ["bad.yaml:4:", "agent.sytem: unknown field", "did you mean system?"]
            ),
            ("bad policy", replacing("always_ask", "sometimes"), ["bad.yaml:8:", "agent.tools[0].configs[0].permission_policy.type"]),
        ]
        for (label, text, expected) in cases {
            do {
                _ = try ScheduleFile.parse(text, file: "Schedules/bad.yaml")
                Issue.record("\(label): accepted")
            } catch {
                #expect(error.line != nil, "\(label): no line in \(error.description)")
                #expect(error.file == "Schedules/bad.yaml")
                for part in expected {
                    #expect(error.description.contains(part), "\(label): \(error.description)")
                }
            }
        }
    }

    @Test("an agent may name MCP servers in a schedule file, as in a job file; the snapshot carries them")
    func mcpServers() throws {
        let file = try ScheduleFile.parse(
            Self.good.replacingOccurrences(
                of: "  system: Be brief.\n", with: "  system: Be brief.\n  mcp_servers: [{type: url, name: docs, url: \"http://127.0.0.1:9/mcp\"}]\n"),
            file: "Schedules/mcp.yaml")
        #expect(file.agentSnapshot.mcpServers == [.url("docs", "http://127.0.0.1:9/mcp")])
    }

    @Test("two files with one name are refused")
    func duplicateNames() throws {
        let directory = scratchDirectory("sched")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.good.write(to: directory.appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        try Self.good.write(to: directory.appendingPathComponent("b.yaml"), atomically: true, encoding: .utf8)
        #expect {
            try ScheduleFile.loadDirectory(directory.path)
        } throws: { error in
            "\(error)".contains("b.yaml") && "\(error)".contains("also the name in")
        }
    }

    /// The two file readers once disagreed: this one turned a quoted "true" into a boolean, so
    /// `metadata: {flag: "true"}` was refused as not a string, and `system: "yes"` as not text.
    @Test("a quoted value stays text, as in a job file")
    func quotedScalars() throws {
        let text = Self.good
            .replacingOccurrences(of: "  system: Be brief.", with: "  system: \"yes\"")
            .replacingOccurrences(of: "jitter_seconds: 60", with: "jitter_seconds: 60\nmetadata: {flag: \"true\", count: \"3\"}")
        let file = try ScheduleFile.parse(text, file: "Schedules/quoted.yaml")
        #expect(file.metadata == ["flag": "true", "count": "3"])
        #expect(file.agentSnapshot.system == "yes")
        // Unquoted, the same words are a boolean and a number, which metadata refuses.
        #expect(throws: ScheduleFileError.self) {
            try ScheduleFile.parse(text.replacingOccurrences(of: "\"true\"", with: "true"), file: "Schedules/quoted.yaml")
        }
    }
}
