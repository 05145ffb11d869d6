import Crypto
import DroverCore
import DroverFileStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One unit of a batch: its fields, its prompt, the files its workspace starts with, and the key
/// that makes a rerun skip it once it has finished.
public struct JobItem: Sendable, Equatable {
    /// Unique within the job and safe as a file name: the report's row label.
    public let id: String
    public let fields: [String: String]
    public let prompt: String
    /// Host path → workspace-relative path.
    public let files: [(source: URL, destination: String)]
    /// SHA-256 over everything that decides the item's outcome: the agent, the prompt and every
    /// byte of its files. An edited submission is a new item; an untouched one is not redone.
    public let key: String

    public static func == (lhs: JobItem, rhs: JobItem) -> Bool { lhs.key == rhs.key && lhs.id == rhs.id }
}

public struct JobItemError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public enum JobItems {
    /// Expands the job's `items` into concrete items, in a stable order.
    public static func expand(_ spec: JobSpec, agentJSON: String) throws -> [JobItem] {
        let rows: [[String: String]]
        var defaultCopies: [JobSpec.Copy] = []
        switch spec.items {
        case .glob(let pattern):
            let matches = try glob(pattern, in: spec.directory)
            guard !matches.isEmpty else {
                throw JobItemError(
                    description:
                        "\(spec.file.path): items.glob: `\(pattern)` matches nothing under \(spec.directory.path). Fix: check the pattern; it is relative to the job file"
                )
            }
            rows = matches.map { url in
                let file = url.lastPathComponent
                return ["file": file, "name": (file as NSString).deletingPathExtension, "path": relativePath(url, to: spec.directory)]
            }
            defaultCopies = [JobSpec.Copy(from: "{{path}}", to: "{{file}}")]
        case .csv(let path):
            let url = URL(fileURLWithPath: path, relativeTo: spec.directory).standardizedFileURL
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw JobItemError(description: "\(spec.file.path): items.csv: cannot read \(url.path). Fix: the path is relative to the job file")
            }
            rows = try CSVTable.rows(text, file: url.path)
        case .list(let values):
            rows = values.map { value in
                guard case .object(let object) = value else { return ["value": flatten(value)] }
                return object.mapValues(flatten)
            }
        }
        var items: [JobItem] = []
        var usedIds: Set<String> = []
        let copies = spec.files.isEmpty ? defaultCopies : spec.files
        // The job and the agent are the same for every item: hashed once, the state copied per item.
        let keyPrefix = keyHasher(job: spec.name, agentJSON: agentJSON)
        for (index, row) in rows.enumerated() {
            var fields = row
            fields["index"] = String(index + 1)
            let label = fields["name"] ?? fields["id"] ?? fields["value"].flatMap { $0.count <= 40 ? $0 : nil }
            let base = safeId(label ?? "item-\(index + 1)")
            var id = base
            var suffix = 2
            while !usedIds.insert(id).inserted {
                id = "\(base)-\(suffix)"
                suffix += 1
            }
            fields["item_id"] = id
            do {
                let prompt = try PromptTemplate.render(spec.prompt, fields: fields)
                var files: [(URL, String)] = []
                for copy in copies {
                    let from = try PromptTemplate.render(copy.from, fields: fields)
                    let source = URL(fileURLWithPath: from, relativeTo: spec.directory).standardizedFileURL
                    guard FileManager.default.fileExists(atPath: source.path) else {
                        throw JobItemError(
                            description:
                                "\(spec.file.path): files: item \(id): \(source.path) does not exist. Fix: `from` is relative to the job file")
                    }
                    let to = try copy.to.map { try PromptTemplate.render($0, fields: fields) } ?? source.lastPathComponent
                    guard !to.hasPrefix("/"), !to.split(separator: "/").contains("..") else {
                        throw JobItemError(
                            description: "\(spec.file.path): files: item \(id): `to: \(to)` leaves the workspace. Fix: use a relative path inside it")
                    }
                    files.append((source, to))
                }
                let key = try itemKey(after: keyPrefix, prompt: prompt, files: files, output: spec.output)
                items.append(JobItem(id: id, fields: fields, prompt: prompt, files: files, key: key))
            } catch let error as PromptTemplate.UnknownField {
                let section = Template.names(in: spec.prompt).contains(error.field) ? "prompt" : "files"
                let line = spec.placeholderLines.line(of: error.field, under: section).map { ":\($0)" } ?? ""
                throw JobItemError(
                    description: "\(spec.file.path)\(line): \(section): item \(id): \(error). Fix: use one of those fields, or add it to the items")
            }
            if let problem = spec.playbook?.placeholderProblem(fields: Set(fields.keys)) {
                let line = spec.placeholderLines.line(of: problem.use.name, under: "playbook").map { ":\($0)" } ?? ""
                throw JobItemError(
                    description: "\(spec.file.path)\(line): playbook.\(problem.use.field): item \(id): \(problem.message). Fix: \(problem.fix)")
            }
        }
        return items
    }

    /// The hash state after the parts of an item's key that every item of a job shares.
    static func keyHasher(job: String, agentJSON: String) -> SHA256 {
        var hasher = SHA256()
        hasher.update(data: Data(job.utf8))
        hasher.update(data: Data([0]))
        hasher.update(data: Data(agentJSON.utf8))
        hasher.update(data: Data([0]))
        return hasher
    }

    static func itemKey(after prefix: SHA256, prompt: String, files: [(URL, String)], output: JobSpec.Output) throws -> String {
        var hasher = prefix
        func feed(_ text: String) {
            hasher.update(data: Data(text.utf8))
            hasher.update(data: Data([0]))
        }
        feed(prompt)
        feed(output.columns.joined(separator: ","))
        feed(output.file ?? "")
        for (source, destination) in files {
            feed(destination)
            // The files the item's sessions get, as the file store sends them: an edit to one
            // is a new item, and a link the store leaves behind changes nothing.
            for (file, relative) in try FileStore.regularFiles(at: source) {
                feed(relative.isEmpty ? "." : relative)
                hasher.update(data: try Data(contentsOf: file))
            }
        }
        return hasher.finalize().lowercaseHex
    }

    static func glob(_ pattern: String, in directory: URL) throws -> [URL] {
        let full = pattern.hasPrefix("/") ? pattern : directory.path + "/" + pattern
        let directoriesOnly = pattern.hasSuffix("/")
        var result = glob_t()
        defer { globfree(&result) }
        let status = Glibc.glob(full, GLOB_MARK, nil, &result)
        guard status == 0 else { return [] }
        var urls: [URL] = []
        for index in 0..<Int(result.gl_pathc) {
            guard let pointer = result.gl_pathv[index] else { continue }
            let path = String(cString: pointer)
            let isDirectory = path.hasSuffix("/")
            if directoriesOnly && !isDirectory { continue }
            urls.append(URL(fileURLWithPath: path, isDirectory: isDirectory).standardizedFileURL)
        }
        return urls.sorted { $0.path < $1.path }
    }

    static func relativePath(_ url: URL, to base: URL) -> String {
        let path = url.standardizedFileURL.path, root = base.standardizedFileURL.path
        if path == root { return "." }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    static func flatten(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): text
        case .null: ""
        case .bool(let flag): flag ? "true" : "false"
        case .number(let number): number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        default: value.compactJSON
        }
    }

    static func safeId(_ text: String) -> String {
        let cleaned = String(text.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "-" }.prefix(80))
        return cleaned.isEmpty || cleaned.hasPrefix(".") ? "item" + cleaned : cleaned
    }
}

/// RFC 4180 CSV with a header row: quoted fields, doubled quotes, newlines inside quotes.
enum CSVTable {
    static func rows(_ text: String, file: String) throws -> [[String: String]] {
        let records = parse(text)
        guard let header = records.first, !header.isEmpty else {
            throw JobItemError(description: "\(file): the CSV has no header row. Fix: put the column names on the first line")
        }
        var rows: [[String: String]] = []
        for (index, record) in records.dropFirst().enumerated() where !(record.count == 1 && record[0].isEmpty) {
            guard record.count == header.count else {
                throw JobItemError(
                    description:
                        "\(file):\(index + 2): \(record.count) fields, but the header has \(header.count). Fix: quote fields that contain commas")
            }
            rows.append(Dictionary(zip(header, record), uniquingKeysWith: { first, _ in first }))
        }
        return rows
    }

    static func parse(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var iterator = text.makeIterator()
        var pending: Character? = nil
        while let character = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" {
                            field.append("\"")
                        } else {
                            quoted = false
                            pending = next
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(character)
                }
                continue
            }
            switch character {
            case "\"" where field.isEmpty: quoted = true
            case ",":
                record.append(field)
                field = ""
            case "\n", "\r\n", "\r":
                record.append(field)
                field = ""
                records.append(record)
                record = []
            default: field.append(character)
            }
        }
        if !field.isEmpty || !record.isEmpty {
            record.append(field)
            records.append(record)
        }
        return records
    }

    static func line(_ fields: [String]) -> String {
        fields.map { field in
            field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                : field
        }.joined(separator: ",")
    }
}
