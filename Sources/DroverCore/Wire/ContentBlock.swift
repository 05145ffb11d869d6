/// A content block of a message or tool result (`BetaManagedAgents*Block`). Types this version
/// does not know decode as `.unknown` with their JSON kept, so a newer peer's blocks survive.
public enum ContentBlock: WireCodable {
    case text(TextBlock)
    case image(ImageBlock)
    case document(DocumentBlock)
    case redacted(RedactedBlock)
    case searchResult(SearchResultBlock)
    case unknown([String: JSONValue])

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        guard case .object(let object) = value else { throw .init(path: path, expected: "a content block object", got: value) }
        switch object["type"] {
        case .string("text"): self = .text(try TextBlock(wire: value, path: path))
        case .string("image"): self = .image(try ImageBlock(wire: value, path: path))
        case .string("document"): self = .document(try DocumentBlock(wire: value, path: path))
        case .string("redacted"): self = .redacted(try RedactedBlock(wire: value, path: path))
        case .string("search_result"): self = .searchResult(try SearchResultBlock(wire: value, path: path))
        case .string: self = .unknown(object)
        default: throw .init(path: WirePath.field(path, "type"), expected: "a content block type such as \"text\"", got: object["type"])
        }
    }

    public var wireValue: JSONValue {
        switch self {
        case .text(let block): block.wireValue
        case .image(let block): block.wireValue
        case .document(let block): block.wireValue
        case .redacted(let block): block.wireValue
        case .searchResult(let block): block.wireValue
        case .unknown(let object): .object(object)
        }
    }

    /// The `type` string on the wire.
    public var type: String {
        switch self {
        case .text: "text"
        case .image: "image"
        case .document: "document"
        case .redacted: "redacted"
        case .searchResult: "search_result"
        case .unknown(let object): object["type"]?.stringValue ?? ""
        }
    }
}

extension ContentBlock {
    public static func text(_ text: String) -> ContentBlock {
        .text(TextBlock(text: text))
    }

    /// The text of a text block; nil for every other kind.
    public var text: String? {
        if case .text(let block) = self { return block.text }
        return nil
    }
}

public struct TextBlock: WireCodable {
    public var text: String
    public var extras: WireExtras

    public init(text: String, extras: WireExtras = WireExtras()) {
        self.text = text
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a text block object")
        try reader.constant("type", "text")
        text = try reader.required("text", .string)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "text")
        writer.set("text", text)
        return writer.value
    }
}

public struct ImageBlock: WireCodable {
    public var source: ImageSource
    public var extras: WireExtras

    public init(source: ImageSource, extras: WireExtras = WireExtras()) {
        self.source = source
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "an image block object")
        try reader.constant("type", "image")
        source = try reader.required("source", .wire(ImageSource.self, "an image source object"))
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "image")
        writer.set("source", source)
        return writer.value
    }
}

public struct DocumentBlock: WireCodable {
    public var source: DocumentSource
    public var context: String?
    public var title: String?
    public var extras: WireExtras

    public init(source: DocumentSource, context: String? = nil, title: String? = nil, extras: WireExtras = WireExtras()) {
        self.source = source
        self.context = context
        self.title = title
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a document block object")
        try reader.constant("type", "document")
        source = try reader.required("source", .wire(DocumentSource.self, "a document source object"))
        context = try reader.optional("context", .string)
        title = try reader.optional("title", .string)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "document")
        writer.set("source", source)
        writer.set("context", context)
        writer.set("title", title)
        return writer.value
    }
}

/// Content withheld by model policy; it has no fields besides its type.
public struct RedactedBlock: WireCodable {
    public var extras: WireExtras

    public init(extras: WireExtras = WireExtras()) {
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a redacted block object")
        try reader.constant("type", "redacted")
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "redacted")
        return writer.value
    }
}
