import DroverCore
import Foundation
import Yams

/// A YAML node with the file it came from and the path to it, so every error can say where.
struct YAMLNode {
    let node: Node
    let file: String
    let path: String

    var line: Int? { node.mark?.line }

    func error(_ message: String, fix: String, field: String? = nil) -> ScheduleFileError {
        ScheduleFileError(file: file, line: line, field: field ?? path, message: message, fix: fix)
    }

    /// A check's error about a field under this node, pointed at that field's line.
    func error(for problem: FieldError) -> ScheduleFileError {
        ScheduleFileError(problem, under: node, at: path, file: file)
    }

    func child(_ key: String) -> YAMLNode? {
        guard let mapping = node.mapping else { return nil }
        for (name, value) in mapping where name.string == key {
            return YAMLNode(node: value, file: file, path: path.isEmpty ? key : "\(path).\(key)")
        }
        return nil
    }

    func keys() -> [(String, Int?)] {
        node.mapping?.map { ($0.key.string ?? "\($0.key)", $0.key.mark?.line) } ?? []
    }

    func required(_ key: String, fix: String) throws(ScheduleFileError) -> YAMLNode {
        guard let value = child(key), value.node.null == nil else {
            throw ScheduleFileError(file: file, line: line, field: path.isEmpty ? key : "\(path).\(key)",
                                    message: "is missing", fix: fix)
        }
        return value
    }

    func string(fix: String) throws(ScheduleFileError) -> String {
        guard case .scalar(let scalar) = node, node.null == nil else {
            throw error("must be a string", fix: fix)
        }
        return scalar.string
    }

    func items(fix: String) throws(ScheduleFileError) -> [YAMLNode] {
        guard case .sequence(let sequence) = node else { throw error("must be a list", fix: fix) }
        return sequence.enumerated().map { YAMLNode(node: $0.element, file: file, path: "\(path)[\($0.offset)]") }
    }

    /// Rejects keys outside `known`, naming the closest one: a misspelt key is an error, never
    /// silently ignored.
    func onlyKeys(_ known: [String]) throws(ScheduleFileError) {
        guard node.mapping != nil else {
            throw error("must be a mapping", fix: "write it as key: value lines")
        }
        for (key, keyLine) in keys() where !known.contains(key) {
            let field = path.isEmpty ? key : "\(path).\(key)"
            throw ScheduleFileError(file: file, line: keyLine, field: field, message: "is not a known field",
                                    fix: "use one of \(known.joined(separator: ", "))")
        }
    }

    /// The node as JSON: scalars resolve as YAML 1.1 core types (bool, int, float, null, string).
    func json() throws(ScheduleFileError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            if node.null != nil { return .null }
            if let value = node.bool { return .bool(value) }
            if let value = node.int { return .number(Double(value)) }
            if let value = node.float { return .number(value) }
            return .string(scalar.string)
        case .sequence:
            var result: [JSONValue] = []
            for item in try items(fix: "") { result.append(try item.json()) }
            return .array(result)
        case .mapping(let mapping):
            var result: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw error("has a key that is not a string", fix: "quote the key") }
                result[name] = try YAMLNode(node: value, file: file, path: "\(path).\(name)").json()
            }
            return .object(result)
        case .alias:
            throw error("uses a YAML alias", fix: "write the value out")
        }
    }
}
