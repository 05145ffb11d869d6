import DroverBrain
import DroverCore
import Foundation
import Yams

/// Reads `Jobs/*.yaml` into a `JobSpec`, refusing anything it does not understand with the
/// file, the line and the fix.
public enum JobFileParser {
    static let topKeys: Set = ["name", "description", "agent", "environment", "items", "prompt", "files", "collect",
                               "concurrency", "retries", "timeout_seconds", "budget", "output", "report", "playbook"]

    public static func load(path: String, workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws(JobFileError) -> JobSpec {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw JobFileError(file: path, line: nil, field: "", message: "cannot read the file (\(error.localizedDescription))",
                               fix: "check the path; shipped jobs are in Jobs/")
        }
        return try parse(text, file: path, workingDirectory: workingDirectory)
    }

    public static func parse(_ text: String, file: String, workingDirectory: URL) throws(JobFileError) -> JobSpec {
        let root = try YAMLReader.load(text, file: file)
        let fields = try root.fields(allowed: topKeys)
        func required(_ key: String, _ fix: String) throws(JobFileError) -> YAMLReader {
            guard let value = fields[key] else {
                throw JobFileError(file: file, line: root.line, field: key, message: "is missing", fix: fix)
            }
            return value
        }
        let fileURL = URL(fileURLWithPath: file, relativeTo: workingDirectory).standardizedFileURL

        let name = try required("name", "add `name: my-job` (letters, digits, - and _)").string()
        guard SafeName.allows(name, maxLength: 64) else {
            throw fields["name"]!.error("`\(name)` is not a usable name", fix: "use 1 to 64 letters, digits, - and _")
        }
        let prompt = try required("prompt", "add `prompt: |` with the instructions for one item, using {{field}} placeholders").string()
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw fields["prompt"]!.error("is empty", fix: "write the instructions for one item")
        }

        var spec = JobSpec(
            name: name,
            description: try fields["description"]?.string(),
            file: fileURL,
            agent: try agent(try required("agent", "add `agent:` with at least `model:`, or the name of a stored agent")),
            environment: try fields["environment"].map { value throws(JobFileError) in try environment(value) },
            items: try items(try required("items", "add `items:` with one of `glob:`, `csv:` or `list:`")),
            prompt: prompt,
            files: try copies(fields["files"]),
            collect: try copies(fields["collect"]),
            concurrency: try fields["concurrency"]?.int(range: 1...512) ?? 4,
            retries: try fields["retries"]?.int(range: 0...10) ?? 1,
            timeoutSeconds: try fields["timeout_seconds"]?.double(range: 1...86_400) ?? 600,
            budget: try budget(fields["budget"]),
            output: try output(fields["output"]),
            reportDirectory: workingDirectory.appendingPathComponent("reports").appendingPathComponent(name),
            playbook: nil
        )
        if let report = fields["report"] {
            let reportFields = try report.fields(allowed: ["dir"])
            if let dir = try reportFields["dir"]?.string() {
                spec.reportDirectory = URL(fileURLWithPath: dir, relativeTo: workingDirectory).standardizedFileURL
            }
        }
        if let playbook = fields["playbook"] {
            _ = try playbook.fields(allowed: ["steps", "final", "ttft_ms"])
            guard let yaml = try? Yams.dump(object: ["playbook": playbook.any]) else {
                throw playbook.error("cannot be re-read", fix: "write `steps:` (a list of {tool, input}) and `final:` (a template)")
            }
            spec.playbook = PlaybookText(yaml: yaml)
        }
        try PromptTemplate.validate(prompt, reader: fields["prompt"]!)
        return spec
    }

    static func agent(_ value: YAMLReader) throws(JobFileError) -> JobSpec.AgentSource {
        if case .scalar = value.node { return .named(try value.string()) }
        let object = try value.json()
        // Checked as the API checks an agent; the file's own JSON is kept, so that item keys
        // (which hash it) stay what they were.
        do throws(FieldError) {
            _ = try AgentParams.fileAgent(object)
        } catch {
            throw value.error(for: error)
        }
        return .inline(object)
    }

    static func environment(_ value: YAMLReader) throws(JobFileError) -> JobSpec.EnvironmentSource {
        if case .scalar = value.node { return .named(try value.string()) }
        _ = try value.fields(allowed: ["name", "description", "config", "metadata"])
        return .inline(try value.json())
    }

    static func items(_ value: YAMLReader) throws(JobFileError) -> JobSpec.ItemSource {
        let fields = try value.fields(allowed: ["glob", "csv", "list"])
        guard fields.count == 1, let (kind, source) = fields.first else {
            throw value.error("needs exactly one of `glob`, `csv` or `list`", fix: "for example `items: {glob: \"submissions/*/\"}`")
        }
        switch kind {
        case "glob": return .glob(try source.string())
        case "csv": return .csv(try source.string())
        default:
            let list = try source.list()
            guard !list.isEmpty else { throw source.error("is empty", fix: "add at least one item") }
            var items: [JSONValue] = []
            for item in list { items.append(try item.json()) }
            return .list(items)
        }
    }

    static func copies(_ value: YAMLReader?) throws(JobFileError) -> [JobSpec.Copy] {
        guard let value else { return [] }
        var copies: [JobSpec.Copy] = []
        for item in try value.list() {
            if case .scalar = item.node {
                copies.append(JobSpec.Copy(from: try item.string(), to: nil))
                continue
            }
            let fields = try item.fields(allowed: ["from", "to"])
            guard let from = fields["from"] else { throw item.error("has no `from`", fix: "write `- {from: path, to: path}`") }
            copies.append(JobSpec.Copy(from: try from.string(), to: try fields["to"]?.string()))
        }
        return copies
    }

    static func budget(_ value: YAMLReader?) throws(JobFileError) -> JobSpec.Budget {
        guard let value else { return JobSpec.Budget() }
        let fields = try value.fields(allowed: ["max_tokens", "max_active_seconds"])
        return JobSpec.Budget(
            maxTokens: try fields["max_tokens"]?.int(range: 1...Int(Int32.max)),
            maxActiveSeconds: try fields["max_active_seconds"]?.double(range: 1...10_000_000)
        )
    }

    static func output(_ value: YAMLReader?) throws(JobFileError) -> JobSpec.Output {
        guard let value else { return JobSpec.Output() }
        let fields = try value.fields(allowed: ["from", "file", "columns"])
        var output = JobSpec.Output()
        if let from = fields["from"] {
            guard let source = JobSpec.Output.Source(rawValue: try from.string()) else {
                throw from.error("must be final_message or file", fix: "use `from: final_message` (JSON in the agent's last message) or `from: file` with `file:`")
            }
            output.source = source
        }
        output.file = try fields["file"]?.string()
        if output.source == .file && output.file == nil {
            throw value.error("`from: file` needs `file`", fix: "add `file: result.json` (a path in the workspace)")
        }
        output.columns = try fields["columns"]?.stringList() ?? []
        return output
    }
}
