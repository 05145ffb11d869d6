import DroverBrain
import DroverCore
import DroverModelStub
import Foundation
import Yams

/// Reads `Jobs/*.yaml` into a `JobSpec`, refusing anything it does not understand with the
/// file, the line and the fix.
public enum JobFileParser {
    public static func load(
        path: String, workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    ) throws(JobFileError) -> JobSpec {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw JobFileError(
                file: path, line: nil, field: "", message: "cannot read the file (\(error.localizedDescription))",
                fix: "check the path; shipped jobs are in Jobs/")
        }
        return try parse(text, file: path, workingDirectory: workingDirectory)
    }

    public static func parse(_ text: String, file: String, workingDirectory: URL) throws(JobFileError) -> JobSpec {
        let content = try SourceFileDecoder.decode(JobFile.self, from: text, file: file, emptyFix: "see Jobs/README.md for the format")
        let fileURL = URL(fileURLWithPath: file, relativeTo: workingDirectory).standardizedFileURL
        var spec = JobSpec(
            name: content.name,
            description: content.description,
            file: fileURL,
            agent: content.agent,
            environment: content.environment,
            items: content.items,
            prompt: content.prompt,
            files: content.files,
            collect: content.collect,
            concurrency: content.concurrency,
            retries: content.retries,
            timeoutSeconds: content.timeoutSeconds,
            budget: content.budget,
            output: content.output,
            reportDirectory: workingDirectory.appendingPathComponent("reports").appendingPathComponent(content.name),
            playbook: content.playbook
        )
        spec.threadPlaybooks = content.threadPlaybooks
        spec.placeholderLines.text = text
        if let dir = content.reportDirectory {
            spec.reportDirectory = URL(fileURLWithPath: dir, relativeTo: workingDirectory).standardizedFileURL
        }
        return spec
    }
}

/// A job file as written, checked field by field as it is decoded.
struct JobFile: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case name, description, agent, environment, items, prompt, files, collect, concurrency, retries
        case timeoutSeconds = "timeout_seconds", budget, output, report, playbook
    }

    var name: String
    var description: String?
    var agent: JobSpec.AgentSource
    var environment: JobSpec.EnvironmentSource?
    var items: JobSpec.ItemSource
    var prompt: String
    var files: [JobSpec.Copy]
    var collect: [JobSpec.Copy]
    var concurrency: Int
    var retries: Int
    var timeoutSeconds: Double
    var budget: JobSpec.Budget
    var output: JobSpec.Output
    var reportDirectory: String?
    var playbook: Playbook?
    var threadPlaybooks: [JobSpec.ThreadPlaybook] = []

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        name = try fields.require(String.self, .name, fix: "add `name: my-job` (letters, digits, - and _)")
        guard SafeName.allows(name, maxLength: 64) else {
            throw decoder.problem(Keys.name, "`\(name)` is not a usable name", fix: "use 1 to 64 letters, digits, - and _")
        }
        prompt = try fields.require(String.self, .prompt, fix: "add `prompt: |` with the instructions for one item, using {{field}} placeholders")
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw decoder.problem(Keys.prompt, "is empty", fix: "write the instructions for one item")
        }
        description = try fields.decodeIfPresent(String.self, forKey: .description)
        agent = try Self.agent(fields)
        threadPlaybooks = try Self.threadPlaybooks(agent, under: fields.codingPath + [Keys.agent])
        environment = try Self.environment(fields)
        items = try fields.require(ItemsField.self, .items, fix: "add `items:` with one of `glob:`, `csv:` or `list:`").source
        files = try fields.decodeIfPresent([CopyField].self, forKey: .files)?.map(\.copy) ?? []
        collect = try fields.decodeIfPresent([CopyField].self, forKey: .collect)?.map(\.copy) ?? []
        concurrency = try fields.decodeIfPresent(Int.self, .concurrency, in: 1...512) ?? 4
        retries = try fields.decodeIfPresent(Int.self, .retries, in: 0...10) ?? 1
        timeoutSeconds = try fields.decodeIfPresent(Double.self, .timeoutSeconds, in: 1...86_400) ?? 600
        budget = try fields.decodeIfPresent(BudgetField.self, forKey: .budget)?.budget ?? JobSpec.Budget()
        output = try fields.decodeIfPresent(OutputField.self, forKey: .output)?.output ?? JobSpec.Output()
        reportDirectory = try fields.decodeIfPresent(ReportField.self, forKey: .report)?.dir
        if let playbook = try fields.decodeIfPresent(PlaybookField.self, forKey: .playbook) {
            self.playbook = playbook.playbook
            if output.source == .finalMessage, let keys = Self.keys(ofFinal: playbook.final) {
                let missing = output.columns.filter { !keys.contains($0) }
                if !missing.isEmpty {
                    throw SourceFileProblem(
                        at: decoder.codingPath + [Keys.output, OutputField.Keys.columns],
                        "\(missing.map { "`\($0)`" }.joined(separator: ", ")) is not a key of the playbook's final message (it has \(keys.sorted().map { "`\($0)`" }.joined(separator: ", ")))",
                        fix: "correct the column's name, or add the key to `playbook.final`")
                }
            }
        }
        try PromptTemplate.validate(prompt, at: decoder.codingPath + [Keys.prompt])
    }

    /// The keys of the JSON object a playbook's final message will hold, when the template says
    /// so by itself (placeholders stand in as values); nil when only running it can tell, as
    /// for `final: "{{result_1}}"`.
    static func keys(ofFinal template: String) -> Set<String>? {
        let filled = template.replacing(/\{\{[^}]*\}\}/, with: "0")
        return OutputExtractor.jsonObject(in: filled).map { Set($0.keys) }
    }

    private static func agent(_ fields: KeyedDecodingContainer<Keys>) throws -> JobSpec.AgentSource {
        let fix = "add `agent:` with at least `model:`, or the name of a stored agent"
        if fields.isScalar(.agent) { return .named(try fields.require(String.self, .agent, fix: fix)) }
        let object = try fields.require(JSONValue.self, .agent, fix: fix)
        // Checked as the API checks an agent; the file's own JSON is kept, so that item keys
        // (which hash it) stay what they were.
        do throws(FieldError) {
            _ = try AgentParams.fileAgent(object)
        } catch {
            throw SourceFileProblem(error, under: fields.codingPath + [Keys.agent])
        }
        return .inline(object)
    }

    /// The playbooks a coordinator's roster agents carry in the file, read by the scripted
    /// model's own parser; each is for the agent with that system prompt.
    private static func threadPlaybooks(_ agent: JobSpec.AgentSource, under path: [any CodingKey]) throws -> [JobSpec.ThreadPlaybook] {
        guard case .inline(let object) = agent, let roster = object.objectValue?["multiagent"]?.objectValue?["agents"]?.arrayValue else { return [] }
        var found: [JobSpec.ThreadPlaybook] = []
        for (index, entry) in roster.enumerated() {
            guard let fields = entry.objectValue, let raw = fields["playbook"] else { continue }
            let field = "multiagent.agents[\(index)]"
            guard let system = fields["system"]?.stringValue, !system.isEmpty else {
                throw SourceFileProblem(
                    FieldError(
                        field: "\(field).system", message: "is missing", fix: "the scripted model finds an agent's playbook by its system prompt"),
                    under: path)
            }
            do {
                // JSON is YAML: the scripted model's parser reads it as written.
                guard let playbook = try ModelScript.parse(yaml: JSONValue.object(["playbook": raw]).compactJSON, file: "").playbook else { continue }
                found.append(JobSpec.ThreadPlaybook(system: system, playbook: playbook))
            } catch let error as ModelScript.ScriptError {
                let at = error.path.drop { $0 == ":" || $0 == " " }
                throw SourceFileProblem(FieldError(field: "\(field).\(at)", message: error.message, fix: nil), under: path)
            }
        }
        return found
    }

    private static func environment(_ fields: KeyedDecodingContainer<Keys>) throws -> JobSpec.EnvironmentSource? {
        guard fields.contains(.environment) else { return nil }
        if fields.isScalar(.environment) { return .named(try fields.decode(String.self, forKey: .environment)) }
        enum EnvironmentKeys: String, CodingKey, CaseIterable { case name, description, config, metadata }
        _ = try fields.nestedContainer(keyedBy: EnvironmentKeys.self, forKey: .environment)
        return .inline(try fields.decode(JSONValue.self, forKey: .environment))
    }
}

private struct ItemsField: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case glob, csv, list }
    let source: JobSpec.ItemSource

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        guard fields.allKeys.count == 1, let kind = fields.allKeys.first else {
            throw decoder.problem(nil, "needs exactly one of `glob`, `csv` or `list`", fix: "for example `items: {glob: \"submissions/*/\"}`")
        }
        switch kind {
        case .glob: source = .glob(try fields.decode(String.self, forKey: .glob))
        case .csv: source = .csv(try fields.decode(String.self, forKey: .csv))
        case .list:
            let list = try fields.decode([JSONValue].self, forKey: .list)
            guard !list.isEmpty else { throw decoder.problem(Keys.list, "is empty", fix: "add at least one item") }
            source = .list(list)
        }
    }
}

/// `- path` or `- {from: path, to: path}`.
private struct CopyField: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case from, to }
    let copy: JobSpec.Copy

    init(from decoder: any Decoder) throws {
        if let path = try? decoder.singleValueContainer().decode(String.self) {
            copy = JobSpec.Copy(from: path, to: nil)
            return
        }
        let fields = try decoder.container(keyedBy: Keys.self)
        copy = JobSpec.Copy(
            from: try fields.require(String.self, .from, fix: "write `- {from: path, to: path}`"),
            to: try fields.decodeIfPresent(String.self, forKey: .to))
    }
}

private struct BudgetField: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case maxTokens = "max_tokens", maxActiveSeconds = "max_active_seconds"
    }
    let budget: JobSpec.Budget

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        budget = JobSpec.Budget(
            maxTokens: try fields.decodeIfPresent(Int.self, .maxTokens, in: 1...Int(Int32.max)),
            maxActiveSeconds: try fields.decodeIfPresent(Double.self, .maxActiveSeconds, in: 1...10_000_000))
    }
}

struct OutputField: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case from, file, columns }
    var output = JobSpec.Output()

    init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Keys.self)
        if let from = try fields.decodeIfPresent(String.self, forKey: .from) {
            guard let source = JobSpec.Output.Source(rawValue: from) else {
                throw decoder.problem(
                    Keys.from, "must be final_message or file",
                    fix: "use `from: final_message` (JSON in the agent's last message) or `from: file` with `file:`")
            }
            output.source = source
        }
        output.file = try fields.decodeIfPresent(String.self, forKey: .file)
        if output.source == .file && output.file == nil {
            throw decoder.problem(nil, "`from: file` needs `file`", fix: "add `file: result.json` (a path in the workspace)")
        }
        if fields.isScalar(.columns) {
            output.columns = [try fields.decode(String.self, forKey: .columns)]
        } else {
            output.columns = try fields.decodeIfPresent([String].self, forKey: .columns) ?? []
        }
    }
}

private struct ReportField: Decodable {
    enum Keys: String, CodingKey, CaseIterable { case dir }
    let dir: String?

    init(from decoder: any Decoder) throws {
        dir = try decoder.container(keyedBy: Keys.self).decodeIfPresent(String.self, forKey: .dir)
    }
}

/// The scripted model's playbook, read by the scripted model's own parser.
private struct PlaybookField: Decodable {
    enum Keys: String, CodingKey, CaseIterable {
        case steps, final
        case ttftMs = "ttft_ms"
    }
    let playbook: Playbook
    /// The final message's template, for checking the output columns against.
    var final: String { playbook.final }

    init(from decoder: any Decoder) throws {
        _ = try decoder.container(keyedBy: Keys.self)
        let subtree = try SourceYAML(from: decoder)
        let yaml: String
        do {
            yaml = try Yams.serialize(node: .mapping(Node.Mapping([(Node("playbook"), subtree.node)])))
        } catch {
            throw decoder.problem(nil, "cannot be re-read", fix: "write `steps:` (a list of {tool, input}) and `final:` (a template)")
        }
        do {
            guard let playbook = try ModelScript.parse(yaml: yaml, file: "").playbook else {
                throw decoder.problem(nil, "is empty", fix: "write `steps:` (a list of {tool, input}) and `final:` (a template)")
            }
            self.playbook = playbook
        } catch let error as ModelScript.ScriptError {
            // The scripted model's parser names the field from `playbook` on: ": playbook.steps[0]".
            let field = error.path.drop { $0 == ":" || $0 == " " }
            throw SourceFileProblem(at: decoder.codingPath.dropLast() + FieldPathKey.keys(of: String(field)), error.message, fix: nil)
        }
    }
}
