/// Reads the fields of one JSON object, remembering which it used and which were `null`.
struct WireReader {
    let object: [String: JSONValue]
    let path: String
    private(set) var consumed: Set<String> = []
    private var nulls: Set<String> = []

    init(_ value: JSONValue, path: String, expected: String) throws(WireDecodingError) {
        guard case .object(let object) = value else { throw .init(path: path, expected: expected, got: value) }
        self.object = object
        self.path = path
    }

    func path(_ key: String) -> String { WirePath.field(path, key) }

    mutating func required<T>(_ key: String, _ field: WireField<T>) throws(WireDecodingError) -> T {
        consumed.insert(key)
        guard let value = object[key] else { throw .init(path: path(key), expected: field.expected, got: nil) }
        return try field.read(value, path(key))
    }

    mutating func optional<T>(_ key: String, _ field: WireField<T>) throws(WireDecodingError) -> T? {
        consumed.insert(key)
        guard let value = object[key] else { return nil }
        if value == .null {
            nulls.insert(key)
            return nil
        }
        return try field.read(value, path(key))
    }

    /// Checks a discriminator such as `"type": "text"`.
    mutating func constant(_ key: String, _ expected: String) throws(WireDecodingError) {
        consumed.insert(key)
        guard object[key] == .string(expected) else {
            throw .init(path: path(key), expected: "\"\(expected)\"", got: object[key])
        }
    }

    /// Every field not read yet, `null`s included; afterwards nothing is left.
    mutating func remaining() -> [String: JSONValue] {
        let rest = object.filter { !consumed.contains($0.key) }
        consumed.formUnion(rest.keys)
        return rest
    }

    var extras: WireExtras {
        WireExtras(unknownFields: object.filter { !consumed.contains($0.key) }, explicitNulls: nulls)
    }
}

/// Builds one JSON object, putting back what `WireExtras` kept.
struct WireWriter {
    private(set) var object: [String: JSONValue]
    private let nulls: Set<String>

    init(_ extras: WireExtras = WireExtras()) {
        object = extras.unknownFields
        nulls = extras.explicitNulls
    }

    /// Writes `value`; `nil` is left out unless the input had an explicit `null` there.
    mutating func set(_ key: String, _ value: (some WireValueConvertible)?) {
        if let value {
            object[key] = value.wireValue
        } else if nulls.contains(key) {
            object[key] = .null
        }
    }

    mutating func set(_ key: String, _ value: (some WireCodable)?) {
        set(key, value?.wireValue)
    }

    mutating func set(_ key: String, _ value: [some WireCodable]?) {
        set(key, value.map { JSONValue.array($0.map(\.wireValue)) })
    }

    mutating func merge(_ fields: [String: JSONValue]) {
        object.merge(fields) { _, new in new }
    }

    var value: JSONValue { .object(object) }
}

protocol WireValueConvertible {
    var wireValue: JSONValue { get }
}

extension JSONValue: WireValueConvertible {
    var wireValue: JSONValue { self }
}

extension String: WireValueConvertible {
    var wireValue: JSONValue { .string(self) }
}

extension Bool: WireValueConvertible {
    var wireValue: JSONValue { .bool(self) }
}

extension Int: WireValueConvertible {
    var wireValue: JSONValue { .number(Double(self)) }
}

extension Double: WireValueConvertible {
    var wireValue: JSONValue { .number(self) }
}

extension Array: WireValueConvertible where Element: WireValueConvertible {
    var wireValue: JSONValue { .array(map(\.wireValue)) }
}

extension Dictionary: WireValueConvertible where Key == String, Value: WireValueConvertible {
    var wireValue: JSONValue { .object(mapValues(\.wireValue)) }
}
