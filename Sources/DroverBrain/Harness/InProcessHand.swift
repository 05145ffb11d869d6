import DroverCore
import DroverTools
import Foundation

/// A minimal hand that runs a few harmless tools inside the worker process: `echo` and `sleep`.
/// It stands in until the sandbox hands exist, so that the brain's loop, crash handling and
/// interrupts can be exercised for real. It runs no user code.
public final class InProcessHand: Hand {
    public init() {}

    public var tools: [ModelToolDefinition] {
        [
            ModelToolDefinition(
                name: "echo", description: "Returns its text.",
                inputSchema: .object([
                    "type": .string("object"), "properties": .object(["text": .object(["type": .string("string")])]),
                    "required": .array([.string("text")]),
                ])
            ),
            ModelToolDefinition(
                name: "sleep", description: "Waits the given number of seconds, then returns.",
                inputSchema: .object([
                    "type": .string("object"), "properties": .object(["seconds": .object(["type": .string("number")])]),
                    "required": .array([.string("seconds")]),
                ])
            ),
        ]
    }

    /// Nothing to provision: its tools run in the worker.
    public func prepare(session: SessionID) async {}

    public func execute(name: String, input: JSONValue, context: ToolContext) async throws -> ToolResult {
        let fields = input.objectValue ?? [:]
        switch name {
        case "echo":
            guard let text = fields["text"]?.stringValue else {
                return .text("echo: input.text is required and must be a string", isError: true)
            }
            return .text(text)
        case "sleep":
            guard case .number(let seconds)? = fields["seconds"], seconds >= 0, seconds <= 3600 else {
                return .text("sleep: input.seconds must be a number from 0 to 3600", isError: true)
            }
            try await Task.sleep(for: .seconds(seconds))
            return .text("slept \(seconds)s")
        default:
            return .text("unknown tool '\(name)'; available: echo, sleep", isError: true)
        }
    }
}
