public struct SearchResultBlock: WireCodable {
    public var citations: SearchResultCitations
    public var content: [SearchResultContent]
    /// The URL of the result.
    public var source: String
    public var title: String
    public var extras: WireExtras

    public init(citations: SearchResultCitations, content: [SearchResultContent], source: String, title: String, extras: WireExtras = WireExtras()) {
        self.citations = citations
        self.content = content
        self.source = source
        self.title = title
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a search result block object")
        try reader.constant("type", "search_result")
        citations = try reader.required("citations", .wire(SearchResultCitations.self, "a citations object such as {\"enabled\": true}"))
        content = try reader.required("content", .array(of: .wire(SearchResultContent.self, "a text block object"), "an array of text blocks"))
        source = try reader.required("source", .string)
        title = try reader.required("title", .string)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("type", "search_result")
        writer.set("citations", citations)
        writer.set("content", content)
        writer.set("source", source)
        writer.set("title", title)
        return writer.value
    }
}

public struct SearchResultCitations: WireCodable {
    public var enabled: Bool
    public var extras: WireExtras

    public init(enabled: Bool, extras: WireExtras = WireExtras()) {
        self.enabled = enabled
        self.extras = extras
    }

    public init(wire value: JSONValue, path: String) throws(WireDecodingError) {
        var reader = try WireReader(value, path: path, expected: "a citations object")
        enabled = try reader.required("enabled", .bool)
        extras = reader.extras
    }

    public var wireValue: JSONValue {
        var writer = WireWriter(extras)
        writer.set("enabled", enabled)
        return writer.value
    }
}

/// A text block inside a search result; only `"type": "text"` is allowed there.
public typealias SearchResultContent = TextBlock
