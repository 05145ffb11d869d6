import Yams

/// How many values one file may decode into. An alias repeats a subtree without copying it, so
/// a few lines of anchors can stand for billions of values ("billion laughs"); past this many,
/// the file is refused instead of expanded.
final class DecodingBudget {
    static let maximumValues = 1_000_000
    private(set) var spent = 0

    func spend() throws {
        spent += 1
        if spent > Self.maximumValues {
            throw SourceFileProblem(
                at: [], "holds more than \(Self.maximumValues) values (counting what its aliases repeat)",
                fix: "write a smaller file, or repeat less through `*aliases`")
        }
    }
}

/// A `Decoder` over one composed YAML node. See `SourceFileDecoder` for what it refuses.
struct NodeDecoder: Decoder {
    let node: Node
    let codingPath: [any CodingKey]
    let budget: DecodingBudget
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: Node, codingPath: [any CodingKey], budget: DecodingBudget) throws {
        try budget.spend()
        self.node = node
        self.codingPath = codingPath
        self.budget = budget
    }

    /// `T` decoded from this node; a `JSONValue` is built straight from the node, which is much
    /// faster than trying each of its cases in turn.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == JSONValue.self { return try json(node, depth: 0) as! T }
        return try T(from: self)
    }

    /// The node as JSON, with YAML's rules for plain scalars (null, booleans, numbers) and every
    /// quoted scalar kept as text. Each value spends from the budget.
    private func json(_ node: Node, depth: Int) throws -> JSONValue {
        if depth > 0 { try budget.spend() }
        switch node {
        case .scalar(let scalar):
            guard node.isPlainScalar else { return .string(scalar.string) }
            if node.isPlainNull { return .null }
            if let value = node.bool { return .bool(value) }
            if let value = node.int { return .number(Double(value)) }
            if let value = node.float { return .number(value) }
            return .string(scalar.string)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            items.reserveCapacity(sequence.count)
            for item in sequence { items.append(try json(item, depth: depth + 1)) }
            return .array(items)
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let name) = key else {
                    throw problem(nil, "has a key that is not a plain name", fix: "use plain names as keys")
                }
                object[name.string] = try json(value, depth: depth + 1)
            }
            return .object(object)
        case .alias:
            throw problem(nil, "uses an alias that could not be resolved", fix: "write the value out in full")
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let mapping) = node else {
            throw problem(nil, "must be a mapping (key: value lines)", fix: "write it as `key: value` lines, indented under its field")
        }
        var values: [String: Node] = [:]
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                throw problem(nil, "has a key that is not a plain name", fix: "use plain names as keys")
            }
            let name = scalar.string
            guard Key(stringValue: name) != nil else {
                let known = knownKeys(Key.self)
                let hint = known.flatMap { likelyMeant(name, among: Set($0)) }.map { "did you mean `\($0)`? " } ?? ""
                let list = known.map { "known fields here: \($0.joined(separator: ", "))" } ?? "remove it"
                throw SourceFileProblem(at: codingPath + [FieldPathKey(name)], "is not a known field", fix: hint + list, line: key.mark?.line)
            }
            values[name] = value
        }
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(values: values, codingPath: codingPath, budget: budget))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let sequence) = node else {
            throw problem(nil, "must be a list", fix: "write one `- item` per line")
        }
        return UnkeyedNodeContainer(items: Array(sequence), codingPath: codingPath, budget: budget)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        return SingleNodeContainer(node: node, codingPath: codingPath, budget: budget)
    }

    private func knownKeys<Key: CodingKey>(_ type: Key.Type) -> [String]? {
        guard let iterable = type as? any (CodingKey & CaseIterable).Type else { return nil }
        return names(iterable)
    }

    private func names<Key: CodingKey & CaseIterable>(_ type: Key.Type) -> [String] {
        type.allCases.map(\.stringValue).sorted()
    }
}

extension Node {
    /// A plain `~`, `null` or nothing: YAML's null. A quoted "null" is the text "null".
    var isPlainNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// A scalar written without quotes, which YAML resolves as a number, a boolean or null.
    var isPlainScalar: Bool {
        guard case .scalar(let scalar) = self else { return false }
        return scalar.style == .plain || scalar.style == .any
    }
}

private struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let values: [String: Node]
    let codingPath: [any CodingKey]
    let budget: DecodingBudget

    var allKeys: [Key] { values.keys.sorted().compactMap(Key.init(stringValue:)) }

    func contains(_ key: Key) -> Bool { values[key.stringValue] != nil }

    private func child(_ key: Key) throws -> NodeDecoder {
        guard let node = values[key.stringValue] else {
            throw SourceFileProblem(at: codingPath + [key], "is missing", fix: "add `\(key.stringValue):`")
        }
        return try NodeDecoder(node: node, codingPath: codingPath + [key], budget: budget)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try child(key).node.isPlainNull
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try child(key).decode(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        throw SourceFileProblem(at: codingPath, "cannot be read as a whole here", fix: nil)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try child(key)
    }
}

private struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let items: [Node]
    let codingPath: [any CodingKey]
    let budget: DecodingBudget
    var currentIndex = 0

    init(items: [Node], codingPath: [any CodingKey], budget: DecodingBudget) {
        self.items = items
        self.codingPath = codingPath
        self.budget = budget
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> NodeDecoder {
        guard !isAtEnd else {
            throw SourceFileProblem(at: codingPath, "has too few items", fix: nil)
        }
        defer { currentIndex += 1 }
        return try NodeDecoder(node: items[currentIndex], codingPath: codingPath + [FieldPathKey(intValue: currentIndex)], budget: budget)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isPlainNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next().decode(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next().unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        try next()
    }
}

private struct SingleNodeContainer: SingleValueDecodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    let budget: DecodingBudget

    private func mismatch(_ what: String, fix: String) -> SourceFileProblem {
        SourceFileProblem(at: codingPath, "must be \(what)", fix: fix)
    }

    func decodeNil() -> Bool { node.isPlainNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard node.isPlainScalar, let value = node.bool else { throw mismatch("true or false", fix: "write true or false") }
        return value
    }

    func decode(_ type: String.Type) throws -> String {
        guard case .scalar(let scalar) = node, !node.isPlainNull else {
            throw mismatch("a string", fix: "write a single value, quoted if it has special characters")
        }
        return scalar.string
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard node.isPlainScalar, let value = node.float ?? node.int.map(Double.init) else {
            throw mismatch("a number", fix: "write a number, without quotes")
        }
        return value
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decode(_ type: Int.Type) throws -> Int {
        guard node.isPlainScalar, let value = node.int else {
            throw mismatch("a whole number", fix: "write a whole number, without quotes")
        }
        return value
    }

    func decode(_ type: Int8.Type) throws -> Int8 { try exactly(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try exactly(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try exactly(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try exactly(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try exactly(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try exactly(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try exactly(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try exactly(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try exactly(UInt64.self) }

    private func exactly<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard let value = T(exactly: try decode(Int.self)) else {
            throw mismatch("a whole number from \(T.min) to \(T.max)", fix: "write a smaller number")
        }
        return value
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try NodeDecoder(node: node, codingPath: codingPath, budget: budget).decode(type)
    }
}
