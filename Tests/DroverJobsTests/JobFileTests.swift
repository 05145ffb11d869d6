import DroverCore
import DroverTesting
import Foundation
import Testing

@testable import DroverJobs

@Suite("Job files")
struct JobFileTests {
    let directory = scratchDirectory("jobfile")

    static let valid = """
        name: demo
        agent:
          model: claude-sonnet-4-5
          tools: [{type: agent_toolset_20260401}]
        items:
          list:
            - {name: one, topic: rivers}
            - {name: two, topic: lakes}
        prompt: "Write about {{topic}} for {{name}}"
        concurrency: 3
        timeout_seconds: 30
        output: {columns: [title]}
        playbook:
          steps: [{tool: bash, input: {command: "echo hi"}}]
          final: '{"title": "{{last_result}}"}'
        """

    func parse(_ text: String) throws(JobFileError) -> JobSpec {
        try JobFileParser.parse(text, file: "Jobs/demo.yaml", workingDirectory: directory)
    }

    func failure(_ text: String) -> JobFileError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test("an item's key is the SHA-256 of its parts, as every earlier version computed it: a rerun must find its items")
    func itemKeyIsStable() throws {
        var output = JobSpec.Output()
        output.columns = ["score", "notes"]
        let prefix = JobItems.keyHasher(job: "grade", agentJSON: #"{"model":"m"}"#)
        // sha256(b'grade\0{"model":"m"}\0Grade it\0score,notes\0\0'), computed outside Swift.
        #expect(
            try JobItems.itemKey(after: prefix, prompt: "Grade it", files: [], output: output)
                == "20b5bf4433dc5b28eb85b466beda5ebaa39c59bcebb947ff9244bed0ef5dc976")
    }

    @Test("a valid file parses into the spec, with its items rendered and keyed by content")
    func valid() throws {
        let spec = try parse(Self.valid)
        #expect(spec.name == "demo")
        #expect(spec.concurrency == 3)
        #expect(spec.timeoutSeconds == 30)
        #expect(spec.retries == 1)
        #expect(spec.output.columns == ["title"])
        #expect(spec.reportDirectory.path == directory.appendingPathComponent("reports/demo").path)
        #expect(spec.playbook?.steps.first?.input == .object(["command": .string("echo hi")]))
        let items = try JobItems.expand(spec, agentJSON: "{}")
        #expect(items.map(\.id) == ["one", "two"])
        #expect(items[0].prompt == "Write about rivers for one")
        #expect(items[0].key != items[1].key)
        // The same content gives the same key; other content (here the agent) another.
        #expect(try JobItems.expand(spec, agentJSON: "{}")[0].key == items[0].key)
        #expect(try JobItems.expand(spec, agentJSON: "{\"model\":\"x\"}")[0].key != items[0].key)
    }

    @Test("malformed YAML names the file and the line")
    func malformed() throws {
        let error = try #require(failure("name: demo\nagent:\n  model: [unclosed\nprompt: x\n"))
        #expect(error.file == "Jobs/demo.yaml")
        #expect(error.line != nil)
        #expect(error.description.contains("not valid YAML"))
        #expect(error.description.contains("Fix:"))
    }

    @Test("a missing field says which and how to add it")
    func missing() throws {
        let error = try #require(failure(Self.valid.replacingOccurrences(of: "prompt: \"Write about {{topic}} for {{name}}\"\n", with: "")))
        #expect(error.field == "prompt")
        #expect(error.description.contains("is missing"))
        #expect(error.fix?.contains("prompt:") == true)
        let noModel = try #require(failure(Self.valid.replacingOccurrences(of: "  model: claude-sonnet-4-5\n", with: "")))
        #expect(noModel.field == "agent.model")
        #expect(noModel.description.contains("model"))
    }

    @Test("an inline agent is checked as the API checks one: a misspelt field or tool type names its line and the fix")
    func agentChecked() throws {
        let typo = try #require(
            failure(Self.valid.replacingOccurrences(of: "  model: claude-sonnet-4-5\n", with: "  model: claude-sonnet-4-5\n  sytem: Grade it.\n")))
        #expect(typo.field == "agent.sytem" && typo.line == 4, "\(typo)")
        #expect(typo.fix?.contains("did you mean system?") == true, "\(typo)")
        let tool = try #require(failure(Self.valid.replacingOccurrences(of: "agent_toolset_20260401", with: "agent_toolset_2026")))
        #expect(tool.field == "agent.tools[0].type" && tool.line == 4, "\(tool)")
        #expect(tool.description.contains("'agent_toolset_2026' is not a tool type"), "\(tool)")
        let config = try #require(
            failure(
                Self.valid.replacingOccurrences(
                    of: "  tools: [{type: agent_toolset_20260401}]\n",
                    with: "  tools:\n    - type: agent_toolset_20260401\n      configs:\n        - {name: bash, enabeld: false}\n")))
        #expect(config.field == "agent.tools[0].configs[0].enabeld" && config.line == 7, "\(config)")
        // MCP servers are the operator's to name in a file; their shape is checked here too.
        let server = try #require(
            failure(
                Self.valid.replacingOccurrences(
                    of: "  tools: [{type: agent_toolset_20260401}]\n", with: "  mcp_servers: [{type: url, name: docs}]\n")))
        #expect(server.field?.hasPrefix("agent.mcp_servers[0]") == true && server.description.contains("url"), "\(server)")
        let command = try #require(
            failure(
                Self.valid.replacingOccurrences(
                    of: "  tools: [{type: agent_toolset_20260401}]\n", with: "  mcp_servers: [{type: stdio, name: local, command: [python3, [1]]}]\n")
            ))
        #expect(command.field == "agent.mcp_servers[0].command[1]", "\(command)")
        _ = try parse(
            Self.valid.replacingOccurrences(
                of: "  tools: [{type: agent_toolset_20260401}]\n", with: "  mcp_servers: [{type: url, name: docs, url: \"http://127.0.0.1:9/mcp\"}]\n"
            ))
    }

    @Test("an unknown key points at its line and suggests the right one")
    func unknownKey() throws {
        let error = try #require(failure(Self.valid + "\nconcurency: 4\n"))
        #expect(error.field == "concurency")
        #expect(error.line == 16)
        #expect(error.fix?.contains("did you mean `concurrency`") == true)
    }

    @Test("wrong types and ranges name the field")
    func wrongTypes() throws {
        let text = try #require(failure(Self.valid.replacingOccurrences(of: "concurrency: 3", with: "concurrency: lots")))
        #expect(text.field == "concurrency")
        #expect(text.description.contains("whole number"))
        let range = try #require(failure(Self.valid.replacingOccurrences(of: "timeout_seconds: 30", with: "timeout_seconds: 0")))
        #expect(range.field == "timeout_seconds")
        #expect(range.description.contains("out of range"))
        let items = try #require(failure(Self.valid.replacingOccurrences(of: "  list:", with: "  lst:")))
        #expect(items.field == "items.lst")
        let output = try #require(failure(Self.valid.replacingOccurrences(of: "output: {columns: [title]}", with: "output: {from: file}")))
        #expect(output.description.contains("needs `file`"))
    }

    @Test("a placeholder that names no field fails with the item and the fields it has")
    func unknownPlaceholder() throws {
        let spec = try parse(Self.valid.replacingOccurrences(of: "{{topic}}", with: "{{subject}}"))
        #expect(throws: JobItemError.self) { try JobItems.expand(spec, agentJSON: "{}") }
        do {
            _ = try JobItems.expand(spec, agentJSON: "{}")
        } catch {
            #expect("\(error)".contains("{{subject}}"))
            #expect("\(error)".contains("topic"))
        }
        let unbalanced = try #require(failure(Self.valid.replacingOccurrences(of: "{{topic}}", with: "{{topic")))
        #expect(unbalanced.field == "prompt")
    }

    @Test("glob and CSV items carry their fields and files")
    func globAndCSV() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data.appendingPathComponent("subs/ana"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: data.appendingPathComponent("subs/bo"), withIntermediateDirectories: true)
        try Data("print(1)".utf8).write(to: data.appendingPathComponent("subs/ana/main.py"))
        try Data("print(2)".utf8).write(to: data.appendingPathComponent("subs/bo/main.py"))
        try Data("name,score\n\"Smith, Ana\",3\nBo,4\n".utf8).write(to: data.appendingPathComponent("rows.csv"))
        let file = directory.appendingPathComponent("job.yaml").path
        let globSpec = try JobFileParser.parse(
            """
            name: g
            agent: {model: m}
            items: {glob: "data/subs/*/"}
            prompt: "grade {{name}} at {{path}}"
            """, file: file, workingDirectory: directory)
        let globbed = try JobItems.expand(globSpec, agentJSON: "{}")
        #expect(globbed.map(\.id) == ["ana", "bo"])
        #expect(globbed[0].prompt == "grade ana at data/subs/ana")
        #expect(globbed[0].files.map(\.destination) == ["ana"])
        // Editing a submission changes its key and only its key.
        let before = globbed.map(\.key)
        try Data("print(3)".utf8).write(to: data.appendingPathComponent("subs/bo/main.py"))
        let after = try JobItems.expand(globSpec, agentJSON: "{}").map(\.key)
        #expect(after[0] == before[0])
        #expect(after[1] != before[1])

        let csvSpec = try JobFileParser.parse(
            """
            name: c
            agent: {model: m}
            items: {csv: data/rows.csv}
            prompt: "{{name}} scored {{score}}"
            """, file: file, workingDirectory: directory)
        let rows = try JobItems.expand(csvSpec, agentJSON: "{}")
        #expect(rows.map(\.prompt) == ["Smith, Ana scored 3", "Bo scored 4"])
        #expect(rows[0].id == "Smith--Ana")

        let empty = try JobFileParser.parse(
            """
            name: e
            agent: {model: m}
            items: {glob: "data/nothing/*"}
            prompt: x
            """, file: file, workingDirectory: directory)
        #expect(throws: JobItemError.self) { try JobItems.expand(empty, agentJSON: "{}") }
    }

    @Test("the final message's JSON object becomes the columns")
    func outputExtraction() throws {
        #expect(OutputExtractor.jsonObject(in: "[scripted] {\"score\": 90, \"verdict\": \"fail\"}")?["score"] == .number(90))
        #expect(OutputExtractor.jsonObject(in: "Here it is:\n```json\n{\"a\": 1}\n```\nDone {x}")?["a"] == .number(1))
        #expect(OutputExtractor.jsonObject(in: "no json here") == nil)
        #expect(try OutputExtractor.columns(from: ["a": .number(1), "b": .number(2)], wanted: ["b"]).get() == ["b": .number(2)])
        #expect(try OutputExtractor.columns(from: ["a": .null], wanted: []).get() == ["a": .null])
        // A column the output lacks fails the item, naming what it has: `scroe` is not `score`.
        guard case .failure(let missing) = OutputExtractor.columns(from: ["score": .number(90), "total": .number(10)], wanted: ["scroe", "total"])
        else {
            Issue.record("a missing column passed")
            return
        }
        #expect(missing.description.contains("no `scroe` (it has `score`, `total`)"), "\(missing)")
    }

    @Test("output.columns the playbook's final message cannot produce is refused at load, naming the line and the keys it has")
    func columnsCheckedAgainstPlaybook() throws {
        let typo = try #require(failure(Self.valid.replacingOccurrences(of: "output: {columns: [title]}", with: "output: {columns: [titel]}")))
        #expect(typo.field == "output.columns" && typo.line == 12, "\(typo)")
        #expect(typo.description.contains("`titel`") && typo.description.contains("`title`"), "\(typo)")
        // A final message that is all placeholders cannot be checked before it runs; it is allowed.
        _ = try parse(
            Self.valid.replacingOccurrences(of: "output: {columns: [title]}", with: "output: {columns: [titel]}")
                .replacingOccurrences(of: "final: '{\"title\": \"{{last_result}}\"}'", with: "final: '{{last_result}}'"))
        // Nor is a file output checked against the final message.
        _ = try parse(
            Self.valid.replacingOccurrences(of: "output: {columns: [title]}", with: "output: {from: file, file: out.json, columns: [titel]}"))
    }

    @Test("an unknown placeholder in the prompt or the playbook is refused before anything runs, with the line and the fields there are")
    func unknownPlaceholders() throws {
        func expansionError(_ text: String) throws -> String {
            do {
                _ = try JobItems.expand(try parse(text), agentJSON: "{}")
                return ""
            } catch let error as JobItemError {
                return error.description
            }
        }
        // Line 15 is the playbook's final message.
        let final = try expansionError(Self.valid.replacingOccurrences(of: "{{last_result}}", with: "{{last_result}} on {{topik}}"))
        #expect(final.contains("Jobs/demo.yaml:15: playbook.final: item one: {{topik}} names no placeholder"), "\(final)")
        #expect(final.contains("the item's fields are index, item_id, name, topic") && final.contains("user_text, named_file"), "\(final)")
        // Item fields fill in steps too; a result past the last step is unknown.
        let step = try expansionError(Self.valid.replacingOccurrences(of: "echo hi", with: "echo {{topic}} {{result_2}}"))
        #expect(step.contains("Jobs/demo.yaml:14: playbook.steps[0].input.command: item one: {{result_2}}"), "\(step)")
        // `result_N` is how the docs write the family; as a placeholder it names nothing.
        let family = try expansionError(Self.valid.replacingOccurrences(of: "{{last_result}}", with: "{{result_N}}"))
        #expect(family.contains("playbook.final: item one: {{result_N}} names no placeholder"), "\(family)")
        let prompt = try expansionError(Self.valid.replacingOccurrences(of: "for {{name}}", with: "for {{nmae}}"))
        #expect(prompt.contains("Jobs/demo.yaml:9: prompt: item one: {{nmae}} names no field"), "\(prompt)")
        // A playbook step the scripted model could not take is refused at load, at its line.
        let step2 = try #require(failure(Self.valid.replacingOccurrences(of: "{tool: bash, input:", with: "{tol: bash, input:")))
        #expect(step2.field == "playbook.steps[0]" && step2.line == 14, "\(step2)")
    }

    @Test("output.file and collect: follow no link the agent planted, and collect.to stays in the report")
    func workspaceLinks() throws {
        let workspace = directory.appendingPathComponent("ws")
        try FileManager.default.createDirectory(at: workspace, withIntermediateDirectories: true)
        let hostFile = directory.appendingPathComponent("host.json")
        try #"{"token": "host-only"}"#.write(to: hostFile, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: workspace.appendingPathComponent("out.json").path, withDestinationPath: hostFile.path)
        var output = JobSpec.Output()
        output.source = .file
        output.file = "out.json"
        guard case .failure(let failure) = OutputExtractor.extract(output, finalMessage: nil, workspace: workspace) else {
            Issue.record("a link to a host file became report columns")
            return
        }
        #expect(failure.description.contains("symbolic link"), "\(failure.description)")
        let report = directory.appendingPathComponent("report")
        #expect(throws: (any Error).self) { try WorkspaceFiles.collect(from: workspace, path: "out.json", to: report, as: "files/out.json") }
        #expect(!FileManager.default.fileExists(atPath: report.appendingPathComponent("files/out.json").path))
        try "real".write(to: workspace.appendingPathComponent("real.txt"), atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try WorkspaceFiles.collect(from: workspace, path: "real.txt", to: report, as: "../escaped.txt") }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("escaped.txt").path))
        #expect(try WorkspaceFiles.collect(from: workspace, path: "real.txt", to: report, as: "files/real.txt"))
        try? FileManager.default.removeItem(at: directory)
    }
}
