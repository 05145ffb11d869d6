import DroverCore
import DroverDatabase
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

    /// `created_at[gt]`, `[gte]`, `[lt]` and `[lte]` as instants: `gt` and `lt` exclude the bound,
    /// and any offset (`Z`, `+05:30`) means the instant it names.
    func createdAtRange() throws -> CreatedAtRange {
        func bound(_ exclusive: String, _ inclusive: String) throws -> (Date, inclusive: Bool)? {
            if string(exclusive) != nil, string(inclusive) != nil {
                throw APIError.invalid(exclusive, "is given with \(inclusive)", fix: "send one of \(exclusive) and \(inclusive)")
            }
            for (name, isInclusive) in [(exclusive, false), (inclusive, true)] {
                guard let text = string(name) else { continue }
                guard let date = CreatedAtRange.instant(text) else {
                    throw APIError.invalid(
                        name, "'\(text.prefix(40))' is not an RFC 3339 time", fix: "use for example 2026-01-31T12:00:00Z or 2026-01-31T17:30:00+05:30"
                    )
                }
                return (date, isInclusive)
            }
            return nil
        }
        var range = CreatedAtRange()
        if let (date, inclusive) = try bound("created_at[gt]", "created_at[gte]") {
            range.after = date
            range.afterInclusive = inclusive
        }
        if let (date, inclusive) = try bound("created_at[lt]", "created_at[lte]") {
            range.before = date
            range.beforeInclusive = inclusive
        }
        return range
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
            throw APIError.invalid(
                "page", "'\(page.prefix(40))' is not a page cursor (page_N with N from 0 to \(Self.pageOffsets.upperBound))",
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

/// Field readers only the API has; the shared ones are in DroverCore's JSONFields.swift.
extension Dictionary where Key == String, Value == JSONValue {
    /// An agent version (`name` as the error names it, `key` in this object): a whole number from
    /// 1 to Int32.max, converted with `Int(exactly:)` so that 1e300 is a 400, never a trap.
    func version(_ key: String, named name: String, nullable: Bool) throws -> Int? {
        guard let asked = self[key], !(nullable && asked == .null) else { return nil }
        guard case .number(let number) = asked, number >= 1, let whole = Int(exactly: number), whole <= Int(Int32.max) else {
            throw APIError.invalid(name, "must be an integer from 1 to \(Int32.max)")
        }
        return whole
    }
}
