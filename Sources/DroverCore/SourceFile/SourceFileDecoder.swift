import Yams

/// Reads a file a person wrote (a job, a schedule) into a `Decodable` type, and says exactly
/// where it is wrong: every error names the file, the line, the field path and the fix.
///
/// It is strict where Yams' own decoder is lenient. A key the type's `CodingKeys` do not name is
/// an error (with "did you mean" when `CodingKeys` is `CaseIterable`), never silently dropped.
/// A quoted scalar is always a string: `"true"` and `"42"` stay text, so a value someone quoted
/// on purpose keeps its meaning. A file that expands past a million values through its aliases
/// is refused rather than expanded.
public enum SourceFileDecoder {
    /// `emptyFix` is what an empty file's error suggests (usually, where the format is described).
    public static func decode<T: Decodable>(_ type: T.Type, from text: String, file: String, emptyFix: String) throws(SourceFileError) -> T {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                throw SourceFileError(file: file, line: 1, field: nil, message: "the file is empty", fix: emptyFix)
            }
            root = composed
        } catch let error as SourceFileError {
            throw error
        } catch {
            throw syntaxError(error, file: file)
        }
        do {
            return try NodeDecoder(node: root, codingPath: [], budget: DecodingBudget()).decode(type)
        } catch {
            throw sourceError(error, root: root, file: file)
        }
    }

    private static func sourceError(_ error: any Error, root: Node, file: String) -> SourceFileError {
        let problem: SourceFileProblem
        switch error {
        case let known as SourceFileProblem:
            problem = known
        case DecodingError.dataCorrupted(let context), DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            // From a Decodable type that checks its own fields (an MCP server entry, say).
            problem = SourceFileProblem(at: context.codingPath, context.debugDescription, fix: "see the format in the README")
        case DecodingError.keyNotFound(let key, let context):
            problem = SourceFileProblem(at: context.codingPath + [key], "is missing", fix: "add `\(key.stringValue):`")
        default:
            problem = SourceFileProblem(at: [], "cannot be read (\(error))", fix: "check the file against the README")
        }
        let field = WirePath.from(problem.codingPath)
        let line = problem.line ?? root.descendant(at: problem.codingPath).mark?.line
        return SourceFileError(file: file, line: line, field: field.isEmpty ? nil : field, message: problem.message, fix: problem.fix)
    }

    private static func syntaxError(_ error: any Error, file: String) -> SourceFileError {
        var line: Int?
        var problem = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        if let error = error as? YamlError {
            switch error {
            case .scanner(let context, let text, let mark, _), .parser(let context, let text, let mark, _),
                .composer(let context, let text, let mark, _):
                line = mark.line
                problem = "\(context.map { "\($0.text) " } ?? "")\(text)"
            default:
                break
            }
        }
        return SourceFileError(
            file: file, line: line, field: nil, message: "is not valid YAML: \(problem)",
            fix: "check the indentation and quoting near that line")
    }
}

/// What is wrong with one field of a source file, thrown from a type's `init(from:)`: the
/// decoder turns it into a `SourceFileError` with the file and the line.
public struct SourceFileProblem: Error, Sendable {
    public let codingPath: [any CodingKey]
    public let message: String
    public let fix: String?
    /// Where the problem is, when the field path alone would point elsewhere (an unknown key's
    /// own line, rather than its value's).
    public let line: Int?

    public init(at codingPath: [any CodingKey], _ message: String, fix: String?, line: Int? = nil) {
        self.codingPath = codingPath
        self.message = message
        self.fix = fix
        self.line = line
    }

    /// A shared check's `FieldError` (an agent, a cron expression) about a field under `codingPath`.
    public init(_ problem: FieldError, under codingPath: [any CodingKey]) {
        let inner: [any CodingKey] = problem.field.map(FieldPathKey.keys(of:)) ?? []
        self.init(at: codingPath + inner, problem.message, fix: problem.fix)
    }
}

/// A coding key for any name or index, for paths built outside `CodingKeys`.
public struct FieldPathKey: CodingKey, Sendable {
    public let stringValue: String
    public let intValue: Int?

    public init(_ name: String) {
        stringValue = name
        intValue = nil
    }

    public init(stringValue: String) {
        self.init(stringValue)
    }

    public init(intValue: Int) {
        stringValue = "[\(intValue)]"
        self.intValue = intValue
    }

    /// The keys of a dotted path such as `tools[0].configs[1].name`.
    public static func keys(of path: String) -> [FieldPathKey] {
        var keys: [FieldPathKey] = []
        for part in path.split(separator: ".", omittingEmptySubsequences: true) {
            var rest = Substring(part)
            let name = rest.prefix { $0 != "[" }
            if !name.isEmpty { keys.append(FieldPathKey(String(name))) }
            rest = rest.dropFirst(name.count)
            while rest.first == "[", let close = rest.firstIndex(of: "]") {
                if let index = Int(rest[rest.index(after: rest.startIndex)..<close]) { keys.append(FieldPathKey(intValue: index)) }
                rest = rest[rest.index(after: close)...]
            }
        }
        return keys
    }
}

/// A YAML subtree kept as it was written, for a part of a file that another YAML reader parses
/// (the scripted model's playbook).
public struct SourceYAML: Decodable, @unchecked Sendable {
    public let node: Node

    public init(from decoder: any Decoder) throws {
        guard let decoder = decoder as? NodeDecoder else {
            throw SourceFileProblem(at: decoder.codingPath, "must come from a YAML file", fix: nil)
        }
        node = decoder.node
    }

    /// The subtree as YAML text.
    public func yaml() throws -> String {
        try Yams.serialize(node: node)
    }
}

extension Decoder {
    /// A problem with the field at `key` under this decoder.
    public func problem(_ key: (any CodingKey)?, _ message: String, fix: String?) -> SourceFileProblem {
        SourceFileProblem(at: codingPath + (key.map { [$0] } ?? []), message, fix: fix)
    }
}

extension KeyedDecodingContainer {
    /// A required field: missing (or null), it is an error that says how to add it.
    public func require<T: Decodable>(_ type: T.Type, _ key: Key, fix: String) throws -> T {
        guard contains(key), try !decodeNil(forKey: key) else {
            throw SourceFileProblem(at: codingPath + [key], "is missing", fix: fix)
        }
        return try decode(type, forKey: key)
    }

    /// A whole number in `range`, or nil when the field is absent.
    public func decodeIfPresent(_ type: Int.Type, _ key: Key, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = try decodeIfPresent(Int.self, forKey: key) else { return nil }
        guard range.contains(value) else {
            throw SourceFileProblem(
                at: codingPath + [key], "\(value) is out of range", fix: "use a number between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    /// A number in `range`, or nil when the field is absent.
    public func decodeIfPresent(_ type: Double.Type, _ key: Key, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = try decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard range.contains(value) else {
            throw SourceFileProblem(
                at: codingPath + [key], "\(value) is out of range", fix: "use a number between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    /// Whether the field holds a single value (not a mapping or a list).
    public func isScalar(_ key: Key) -> Bool {
        guard let decoder = try? superDecoder(forKey: key) as? NodeDecoder, case .scalar = decoder.node else { return false }
        return true
    }

    /// Whether the field holds a mapping.
    public func isMapping(_ key: Key) -> Bool {
        guard let decoder = try? superDecoder(forKey: key) as? NodeDecoder, case .mapping = decoder.node else { return false }
        return true
    }
}
