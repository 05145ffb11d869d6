/// One reply from Redis (RESP2).
public enum RedisValue: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisValue])

    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk, .status: string.flatMap { Int64($0) }
        default: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// An `HGETALL` reply (field, value, field, value, ...) as a dictionary; empty for anything else.
    public var hashFields: [String: String] {
        let values = array ?? []
        var fields: [String: String] = [:]
        for index in stride(from: 0, to: values.count - 1, by: 2) {
            fields[values[index].string ?? ""] = values[index + 1].string ?? ""
        }
        return fields
    }

    /// A Redis error reply as a thrown error; other replies pass through.
    public func throwingErrorReply() throws(RedisError) -> RedisValue {
        if case .error(let message) = self { throw RedisError.server(message) }
        return self
    }
}
