import DroverCore
import Foundation
import Yams

/// Walks a composed YAML document keeping the file, the dotted field path and the line of each
/// value, so every complaint can say where it is.
struct YAMLReader {
    let file: String
    let node: Node
    let path: String

    static func load(_ text: String, file: String) throws(JobFileError) -> YAMLReader {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            let line = (error as? YamlError).flatMap(Self.line(of:))
            throw JobFileError(file: file, line: line, field: "", message: "not valid YAML (\(Self.summary(error)))",
                               fix: "check the indentation and quoting near that line")
        }
        guard let node else {
            throw JobFileError(file: file, line: nil, field: "", message: "the file is empty", fix: "see Jobs/README.md for the format")
        }
        return YAMLReader(file: file, node: node, path: "")
    }

    var line: Int? { node.mark.map { $0.line } }

    func error(_ message: String, fix: String) -> JobFileError {
        JobFileError(file: file, line: line, field: path, message: message, fix: fix)
    }

    /// A check's error about a field under this node, pointed at that field's line.
    func error(for problem: FieldError) -> JobFileError {
        JobFileError(problem, under: node, at: path, file: file)
    }

    func child(_ key: String, _ value: Node) -> YAMLReader {
        YAMLReader(file: file, node: value, path: path.isEmpty ? key : "\(path).\(key)")
    }

    // MARK: Mappings

    func mapping() throws(JobFileError) -> [(String, YAMLReader)] {
        guard case .mapping(let map) = node else {
            throw error("must be a mapping (key: value lines)", fix: "indent the keys under `\(path.isEmpty ? "the top level" : path)`")
        }
        var pairs: [(String, YAMLReader)] = []
        for (key, value) in map {
            guard let name = key.string else { throw error("has a key that is not a string", fix: "use plain names as keys") }
            pairs.append((name, child(name, value)))
        }
        return pairs
    }

    func fields(allowed: Set<String>) throws(JobFileError) -> [String: YAMLReader] {
        var result: [String: YAMLReader] = [:]
        for (key, value) in try mapping() {
            guard allowed.contains(key) else {
                let hint = likelyMeant(key, among: allowed).map { "did you mean `\($0)`? " } ?? ""
                throw value.error("unknown key `\(key)`", fix: "\(hint)allowed keys here: \(allowed.sorted().joined(separator: ", "))")
            }
            result[key] = value
        }
        return result
    }

    // MARK: Scalars

    func string() throws(JobFileError) -> String {
        guard case .scalar(let scalar) = node else { throw error("must be a string", fix: "write a single value, quoted if it has special characters") }
        return scalar.string
    }

    func int(range: ClosedRange<Int>) throws(JobFileError) -> Int {
        guard case .scalar = node, let value = node.int else {
            throw error("must be a whole number", fix: "write a number between \(range.lowerBound) and \(range.upperBound)")
        }
        guard range.contains(value) else {
            throw error("\(value) is out of range", fix: "use a number between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    func double(range: ClosedRange<Double>) throws(JobFileError) -> Double {
        guard case .scalar = node, let value = node.float ?? node.int.map(Double.init) else {
            throw error("must be a number", fix: "write a number between \(range.lowerBound) and \(range.upperBound)")
        }
        guard range.contains(value) else { throw error("\(value) is out of range", fix: "use a number between \(range.lowerBound) and \(range.upperBound)") }
        return value
    }

    func bool() throws(JobFileError) -> Bool {
        guard case .scalar = node, let value = node.bool else { throw error("must be true or false", fix: "write true or false") }
        return value
    }

    func list() throws(JobFileError) -> [YAMLReader] {
        guard case .sequence(let sequence) = node else { throw error("must be a list", fix: "write one `- item` per line") }
        return sequence.enumerated().map { index, item in
            YAMLReader(file: file, node: item, path: "\(path)[\(index)]")
        }
    }

    func stringList() throws(JobFileError) -> [String] {
        if case .scalar = node { return [try string()] }
        var strings: [String] = []
        for item in try list() { strings.append(try item.string()) }
        return strings
    }

    /// The value as JSON, for the parts (agent, environment, events) passed on as they are.
    func json() throws(JobFileError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain || scalar.style == .any {
                if scalar.string == "~" || scalar.string == "null" || scalar.string.isEmpty { return .null }
                if let flag = node.bool { return .bool(flag) }
                if let number = node.int { return .number(Double(number)) }
                if let number = node.float { return .number(number) }
            }
            return .string(scalar.string)
        case .sequence:
            var items: [JSONValue] = []
            for item in try list() { items.append(try item.json()) }
            return .array(items)
        case .mapping:
            var object: [String: JSONValue] = [:]
            for (key, value) in try mapping() { object[key] = try value.json() }
            return .object(object)
        case .alias:
            throw error("uses a YAML alias", fix: "write the value out in full")
        }
    }

    /// The value as plain Foundation objects, for handing to another YAML consumer.
    var any: Any { node.any }

    // MARK: Helpers

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func summary(_ error: Error) -> String {
        let text = "\(error)"
        return text.split(separator: "\n").first.map(String.init) ?? text
    }
}
