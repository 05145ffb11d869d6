import DroverCore
import Foundation
import Hummingbird
import NIOCore

/// A request's JSON body and query, with errors that name the field.
struct RequestInput {
    let query: [String: [String]]

    init(_ request: Request) {
        var query: [String: [String]] = [:]
        for (key, value) in request.uri.queryParameters {
            let name = String(key).removingPercentEncoding ?? String(key)
            query[name.hasSuffix("[]") ? String(name.dropLast(2)) : name, default: []].append(String(value))
        }
        self.query = query
    }

    static func body(_ request: Request, context: APIRequestContext) async throws -> [String: JSONValue] {
        let buffer = try await request.body.collect(upTo: APIServer.maximumBodyBytes)
        if buffer.readableBytes == 0 { return [:] }
        let text = try utf8Text(buffer)
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch {
            throw APIError.invalid("body", "the body is \(error)", fix: "send a JSON object with Content-Type: application/json")
        }
        guard case .object(let fields) = value else {
            throw APIError.invalid("body", "expected a JSON object", fix: "send a JSON object such as {\"name\": ...}")
        }
        return fields
    }

    /// A body's text. Invalid UTF-8 is refused, never silently replaced: a replaced byte would
    /// change what the client sent without telling it.
    static func utf8Text(_ buffer: ByteBuffer) throws -> String {
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw APIError.invalid("body", "the body is not valid UTF-8", fix: "send UTF-8 encoded JSON")
        }
        return text
    }

    func string(_ name: String) -> String? { query[name]?.last }

    func int(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = string(name) else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.invalid(name, "'\(text)' is not an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func bool(_ name: String) throws -> Bool {
        guard let text = string(name) else { return false }
        switch text.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw APIError.invalid(name, "'\(text)' is not true or false")
        }
    }

    /// `asc` or `desc`.
    func ascending(default fallback: Bool) throws -> Bool {
        guard let order = string("order") else { return fallback }
        guard order == "asc" || order == "desc" else { throw APIError.invalid("order", "'\(order)' is not asc or desc") }
        return order == "asc"
    }

    /// The page cursor of list endpoints backed by SQL: an offset, opaque to clients. N in
    /// `page_N` is bounded well below where `offset + limit` could overflow, so a hostile cursor
    /// is a 400 rather than a trap that stops the whole process.
    func pageOffset() throws -> Int {
        guard let page = string("page"), !page.isEmpty else { return 0 }
        guard page.hasPrefix("page_"), let offset = Int(page.dropFirst(5)), Self.pageOffsets.contains(offset) else {
            throw APIError.invalid("page", "'\(page.prefix(40))' is not a page cursor (page_N with N from 0 to \(Self.pageOffsets.upperBound))",
                                   fix: "pass the next_page value of a previous response")
        }
        return offset
    }

    static let pageOffsets = 0...1_000_000_000
}

/// A `SyncPageCursor` page: `data` and `next_page`.
func page(_ items: [JSONValue], next: String?) -> JSONValue {
    .object(["data": .array(items), "next_page": next.map(JSONValue.string) ?? .null])
}

/// Field readers for request bodies: each throws a 400 naming the field.
extension Dictionary where Key == String, Value == JSONValue {
    func string(_ name: String, required: Bool = false, nullable: Bool = true) throws -> String? {
        switch self[name] {
        case nil: if required { throw APIError.invalid(name, "the field is required") }; return nil
        case .null?: if required || !nullable { throw APIError.invalid(name, "must be a string, not null") }; return nil
        case .string(let value)?: return value
        case let other?: throw APIError.invalid(name, "must be a string, got \(other.kindName)")
        }
    }

    /// A metadata map (`name` is `metadata`): at most 16 keys of up to 64 characters, string
    /// values of up to 512, null to delete in a patch. Errors carry the SDK's `invalid_metadata`.
    func stringMap(_ name: String) throws -> [String: JSONValue]? {
        let code = "invalid_metadata"
        switch self[name] {
        case nil, .null?: return nil
        case .object(let map)?:
            guard map.count <= 16 else { throw APIError.invalid(name, "at most 16 keys", errorCode: code) }
            for (key, value) in map {
                guard key.count <= 64 else { throw APIError.invalid("\(name).\(key)", "keys are at most 64 characters", errorCode: code) }
                switch value {
                case .string(let text): if text.count > 512 { throw APIError.invalid("\(name).\(key)", "values are at most 512 characters", errorCode: code) }
                case .null: break
                default: throw APIError.invalid("\(name).\(key)", "must be a string, got \(value.kindName)", errorCode: code)
                }
            }
            return map
        case let other?: throw APIError.invalid(name, "must be an object of strings, got \(other.kindName)", errorCode: code)
        }
    }

    /// An agent version (`name` as the error names it, `key` in this object): a whole number from
    /// 1 to Int32.max, converted with `Int(exactly:)` so that 1e300 is a 400, never a trap.
    func version(_ key: String, named name: String, nullable: Bool) throws -> Int? {
        guard let asked = self[key], !(nullable && asked == .null) else { return nil }
        guard case .number(let number) = asked, number >= 1, let whole = Int(exactly: number), whole <= Int(Int32.max) else {
            throw APIError.invalid(name, "must be an integer from 1 to \(Int32.max)")
        }
        return whole
    }

    func array(_ name: String) throws -> [JSONValue]? {
        switch self[name] {
        case nil, .null?: return nil
        case .array(let items)?: return items
        case let other?: throw APIError.invalid(name, "must be an array, got \(other.kindName)")
        }
    }

    /// Rejects fields the endpoint does not know, so that a typo is not silently ignored.
    func rejectUnknown(_ known: Set<String>) throws {
        if let unknown = keys.filter({ !known.contains($0) }).sorted().first {
            throw APIError.invalid(unknown, "unknown field", fix: "use only \(known.sorted().joined(separator: ", "))")
        }
    }
}

extension JSONValue {
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Merges a metadata patch: a string upserts, null deletes.
func patchMetadata(_ current: JSONValue?, _ patch: [String: JSONValue]) throws -> JSONValue {
    var merged = current?.objectValue ?? [:]
    for (key, value) in patch {
        if value == .null { merged.removeValue(forKey: key) } else { merged[key] = value }
    }
    guard merged.count <= 16 else { throw APIError.invalid("metadata", "at most 16 keys after the update", errorCode: "invalid_metadata") }
    return .object(merged)
}
