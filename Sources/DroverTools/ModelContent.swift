import DroverCore

/// A tool the model may call.
public struct ModelToolDefinition: Sendable, Equatable {
    public var name: String
    public var description: String
    public var inputSchema: JSONValue

    public init(name: String, description: String, inputSchema: JSONValue) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
    }
}

/// A block of a model API message. Only what the model API has and the session log does not
/// is modelled here (thinking, tool use, the tool result that wraps a tool's output); a tool's
/// output itself is the log's `ContentBlock`, so it reaches the model as it was logged.
public enum ModelContentBlock: Sendable, Equatable {
    case text(String)
    case thinking(text: String, signature: String)
    case toolUse(id: String, name: String, input: JSONValue)
    case toolResult(toolUseId: String, content: [ContentBlock], isError: Bool)
}
