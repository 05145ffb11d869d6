// Small discriminated unions decode a known variant only when it carries exactly the known
// fields; anything more goes to `.other` with its JSON, so re-encoding loses nothing.

public enum ImageSource: WireCodable {
    case base64(data: String, mediaType: String)
    case url(String)
    case file(fileId: String)
    case other([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "an image source object")
        switch try reader.required("type", .string) {
        case "base64": self = .base64(data: try reader.required("data", .string), mediaType: try reader.required("media_type", .string))
        case "url": self = .url(try reader.required("url", .string))
        case "file": self = .file(fileId: try reader.required("file_id", .string))
        default: self = .other(reader.object)
        }
        if !reader.extras.isEmpty { self = .other(reader.object) }
    }

    public var wireValue: JSONValue {
        switch self {
        case .base64(let data, let mediaType): .object(["type": .string("base64"), "data": .string(data), "media_type": .string(mediaType)])
        case .url(let url): .object(["type": .string("url"), "url": .string(url)])
        case .file(let fileId): .object(["type": .string("file"), "file_id": .string(fileId)])
        case .other(let object): .object(object)
        }
    }
}

public enum DocumentSource: WireCodable {
    case base64(data: String, mediaType: String)
    /// Plain text; its `media_type` is always `text/plain`.
    case text(data: String)
    case url(String)
    case file(fileId: String)
    case other([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a document source object")
        switch try reader.required("type", .string) {
        case "base64": self = .base64(data: try reader.required("data", .string), mediaType: try reader.required("media_type", .string))
        case "text":
            try reader.constant("media_type", "text/plain")
            self = .text(data: try reader.required("data", .string))
        case "url": self = .url(try reader.required("url", .string))
        case "file": self = .file(fileId: try reader.required("file_id", .string))
        default: self = .other(reader.object)
        }
        if !reader.extras.isEmpty { self = .other(reader.object) }
    }

    public var wireValue: JSONValue {
        switch self {
        case .base64(let data, let mediaType): .object(["type": .string("base64"), "data": .string(data), "media_type": .string(mediaType)])
        case .text(let data): .object(["type": .string("text"), "data": .string(data), "media_type": .string("text/plain")])
        case .url(let url): .object(["type": .string("url"), "url": .string(url)])
        case .file(let fileId): .object(["type": .string("file"), "file_id": .string(fileId)])
        case .other(let object): .object(object)
        }
    }
}
