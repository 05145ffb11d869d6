/// Readers for the fields of a JSON object that a person or a client wrote (a request body, an
/// agent in a job file): each throws a `FieldError` naming the field, so the API answers a 400
/// and a file names its line, from the same check.
extension Dictionary where Key == String, Value == JSONValue {
    public func string(_ name: String, required: Bool = false, nullable: Bool = true) throws(FieldError) -> String? {
        switch self[name] {
        case nil:
            if required { throw FieldError(field: name, message: "is missing", fix: nil) }
            return nil
        case .null?:
            if required || !nullable { throw FieldError(field: name, message: "must be a string, not null", fix: nil) }
            return nil
        case .string(let value)?:
            return value
        case let other?:
            throw FieldError(field: name, message: "must be a string, got \(other.kindName)", fix: nil)
        }
    }

    /// A metadata map (`name` is `metadata`): at most 16 keys of up to 64 characters, string
    /// values of up to 512, null to delete in a patch. Errors carry the SDK's `invalid_metadata`.
    public func stringMap(_ name: String) throws(FieldError) -> [String: JSONValue]? {
        let code = "invalid_metadata"
        switch self[name] {
        case nil, .null?:
            return nil
        case .object(let map)?:
            guard map.count <= 16 else { throw FieldError(field: name, message: "at most 16 keys", fix: nil, code: code) }
            for (key, value) in map {
                guard key.count <= 64 else {
                    throw FieldError(field: "\(name).\(key)", message: "keys are at most 64 characters", fix: nil, code: code)
                }
                switch value {
                case .string(let text):
                    if text.count > 512 {
                        throw FieldError(field: "\(name).\(key)", message: "values are at most 512 characters", fix: nil, code: code)
                    }
                case .null:
                    break
                default:
                    throw FieldError(field: "\(name).\(key)", message: "must be a string, got \(value.kindName)", fix: nil, code: code)
                }
            }
            return map
        case let other?:
            throw FieldError(field: name, message: "must be an object of strings, got \(other.kindName)", fix: nil, code: code)
        }
    }

    public func array(_ name: String) throws(FieldError) -> [JSONValue]? {
        switch self[name] {
        case nil, .null?: return nil
        case .array(let items)?: return items
        case let other?: throw FieldError(field: name, message: "must be an array, got \(other.kindName)", fix: nil)
        }
    }

    /// Rejects fields the reader does not know, so that a typo is not silently ignored. The fix
    /// names the closest known field when one is a likely typo.
    public func rejectUnknown(_ known: Set<String>) throws(FieldError) {
        guard let unknown = keys.filter({ !known.contains($0) }).sorted().first else { return }
        let hint = likelyMeant(unknown, among: known).map { "did you mean \($0)? " } ?? ""
        throw FieldError(field: unknown, message: "unknown field", fix: "\(hint)use only \(known.sorted().joined(separator: ", "))")
    }
}

extension JSONValue {
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    /// An optional boolean at `path`: absent or null is nil, anything but a boolean an error.
    public static func bool(_ value: JSONValue?, path: String) throws(FieldError) -> Bool? {
        switch value {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw FieldError(field: path, message: "must be a boolean, got \(other.kindName)", fix: nil)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}

/// Merges a metadata patch: a string upserts, null deletes.
public func patchMetadata(_ current: JSONValue?, _ patch: [String: JSONValue]) throws(FieldError) -> JSONValue {
    var merged = current?.objectValue ?? [:]
    for (key, value) in patch {
        if value == .null { merged.removeValue(forKey: key) } else { merged[key] = value }
    }
    guard merged.count <= 16 else {
        throw FieldError(field: "metadata", message: "at most 16 keys after the update", fix: nil, code: "invalid_metadata")
    }
    return .object(merged)
}

/// The known key a misspelt `key` most likely meant: the closest within two edits.
public func likelyMeant(_ key: String, among known: some Collection<String>) -> String? {
    known.min { editDistance($0, key) < editDistance($1, key) }.flatMap { editDistance($0, key) <= 2 ? $0 : nil }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
