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

public enum ModelContentBlock: Sendable, Equatable {
    case text(String)
    case thinking(text: String, signature: String)
    case toolUse(id: String, name: String, input: JSONValue)
    case toolResult(toolUseId: String, content: [ModelContentBlock], isError: Bool)
}
