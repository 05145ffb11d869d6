/// How to read one field's value, and how to name it in an error.
struct WireField<T> {
    let expected: String
    let read: (JSONValue, String) throws(WireDecodingError) -> T
}

extension WireField where T == String {
    static var string: Self {
        Self(expected: "a string") { value, path throws(WireDecodingError) in
            guard case .string(let string) = value else { throw .init(path: path, expected: "a string", got: value) }
            return string
        }
    }
}

extension WireField where T == Bool {
    static var bool: Self {
        Self(expected: "a boolean") { value, path throws(WireDecodingError) in
            guard case .bool(let bool) = value else { throw .init(path: path, expected: "a boolean (true or false)", got: value) }
            return bool
        }
    }
}

extension WireField where T == Int {
    static var int: Self {
        Self(expected: "an integer") { value, path throws(WireDecodingError) in
            guard case .number(let number) = value, number.rounded() == number, abs(number) < 9.007_199_254_740_992e15 else {
                throw .init(path: path, expected: "an integer", got: value)
            }
            return Int(number)
        }
    }
}

extension WireField where T == Double {
    static var double: Self {
        Self(expected: "a number") { value, path throws(WireDecodingError) in
            guard case .number(let number) = value else { throw .init(path: path, expected: "a number", got: value) }
            return number
        }
    }
}

extension WireField where T == [String: JSONValue] {
    static var object: Self {
        Self(expected: "an object") { value, path throws(WireDecodingError) in
            guard case .object(let object) = value else { throw .init(path: path, expected: "an object", got: value) }
            return object
        }
    }
}

extension WireField where T == [String: String] {
    static var stringMap: Self {
        Self(expected: "an object of strings") { value, path throws(WireDecodingError) in
            guard case .object(let object) = value else { throw .init(path: path, expected: "an object of strings", got: value) }
            var result: [String: String] = [:]
            for (key, item) in object {
                result[key] = try WireField<String>.string.read(item, WirePath.field(path, key))
            }
            return result
        }
    }
}

extension WireField where T: WireCodable {
    static func wire(_ type: T.Type, _ expected: String) -> Self {
        Self(expected: expected) { value, path throws(WireDecodingError) in try T(wire: value, path: path) }
    }
}

extension WireField where T: RawRepresentable & CaseIterable, T.RawValue == String {
    /// A string field limited to the raw values of `T`.
    static var oneOf: Self {
        let names = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        return Self(expected: "one of \(names)") { value, path throws(WireDecodingError) in
            guard case .string(let raw) = value, let result = T(rawValue: raw) else {
                throw .init(path: path, expected: "one of \(names)", got: value)
            }
            return result
        }
    }
}

extension WireField {
    static func array<E>(of element: WireField<E>, _ expected: String) -> Self where T == [E] {
        Self(expected: expected) { value, path throws(WireDecodingError) in
            guard case .array(let items) = value else { throw .init(path: path, expected: expected, got: value) }
            var result: [E] = []
            result.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                result.append(try element.read(item, WirePath.index(path, index)))
            }
            return result
        }
    }
}
