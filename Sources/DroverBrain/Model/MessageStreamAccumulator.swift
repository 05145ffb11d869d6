import DroverCore
import DroverTools
import Foundation

/// Folds the Messages API's stream events (`message_start`, `content_block_*`, `message_delta`,
/// `message_stop`, `ping`, `error`) into deltas for previews and, at the end, the whole message.
struct MessageStreamAccumulator {
    private enum Block {
        case text(String)
        case thinking(String, signature: String)
        case toolUse(id: String, name: String, json: String)
    }

    private var id = ""
    private var model = ""
    private var blocks: [Int: Block] = [:]
    private var stopReason: String?
    private var usage = ModelUsage()
    private(set) var finished = false

    /// Applies one SSE event; returns what to report, if anything.
    mutating func apply(name: String, data: String) throws -> [ModelStreamEvent] {
        guard let object = (try? JSONValue.parse(data))?.objectValue else {
            throw ModelError.malformedStream("event \(name) carries no JSON object")
        }
        switch name {
        case "message_start":
            let message = object["message"]?.objectValue ?? [:]
            id = message["id"]?.stringValue ?? ""
            model = message["model"]?.stringValue ?? ""
            merge(usage: message["usage"])
            return [.started(id: id, model: model)]
        case "content_block_start":
            let index = object["index"]?.intValue ?? 0
            let block = object["content_block"]?.objectValue ?? [:]
            switch block["type"]?.stringValue {
            case "text":
                blocks[index] = .text(block["text"]?.stringValue ?? "")
            case "thinking":
                blocks[index] = .thinking(block["thinking"]?.stringValue ?? "", signature: block["signature"]?.stringValue ?? "")
            case "tool_use":
                let toolId = block["id"]?.stringValue ?? ""
                let name = block["name"]?.stringValue ?? ""
                blocks[index] = .toolUse(id: toolId, name: name, json: "")
                return [.toolUseStarted(index: index, id: toolId, name: name)]
            default:
                break  // server tools and other blocks Drover does not run are ignored
            }
            return []
        case "content_block_delta":
            let index = object["index"]?.intValue ?? 0
            let delta = object["delta"]?.objectValue ?? [:]
            switch (delta["type"]?.stringValue, blocks[index]) {
            case ("text_delta", .text(let text)?):
                let piece = delta["text"]?.stringValue ?? ""
                blocks[index] = .text(text + piece)
                return [.textDelta(index: index, text: piece)]
            case ("thinking_delta", .thinking(let text, let signature)?):
                let piece = delta["thinking"]?.stringValue ?? ""
                blocks[index] = .thinking(text + piece, signature: signature)
                return [.thinkingDelta(index: index, text: piece)]
            case ("signature_delta", .thinking(let text, let signature)?):
                blocks[index] = .thinking(text, signature: signature + (delta["signature"]?.stringValue ?? ""))
            case ("input_json_delta", .toolUse(let toolId, let name, let json)?):
                let piece = delta["partial_json"]?.stringValue ?? ""
                blocks[index] = .toolUse(id: toolId, name: name, json: json + piece)
                return [.inputJSONDelta(index: index, json: piece)]
            default:
                break
            }
            return []
        case "message_delta":
            if let reason = object["delta"]?.objectValue?["stop_reason"]?.stringValue { stopReason = reason }
            merge(usage: object["usage"])
            return []
        case "message_stop":
            finished = true
            return [.completed(try response())]
        case "error":
            let error = object["error"]?.objectValue ?? [:]
            throw ModelError.api(
                status: 0, type: error["type"]?.stringValue ?? "api_error",
                message: error["message"]?.stringValue ?? "error event in stream", retryAfter: nil
            )
        default:
            return []  // ping, and events added to the API later
        }
    }

    private mutating func merge(usage value: JSONValue?) {
        guard let fields = value?.objectValue else { return }
        if let n = fields["input_tokens"]?.intValue { usage.inputTokens = n }
        if let n = fields["output_tokens"]?.intValue { usage.outputTokens = n }
        if let n = fields["cache_creation_input_tokens"]?.intValue { usage.cacheCreationInputTokens = n }
        if let n = fields["cache_read_input_tokens"]?.intValue { usage.cacheReadInputTokens = n }
    }

    func response() throws -> ModelResponse {
        let content = try blocks.keys.sorted().compactMap { index -> ModelContentBlock? in
            switch blocks[index]! {
            case .text(let text):
                return .text(text)
            case .thinking(let text, let signature):
                return .thinking(text: text, signature: signature)
            case .toolUse(let id, let name, let json):
                if json.trimmingCharacters(in: .whitespaces).isEmpty {
                    return .toolUse(id: id, name: name, input: .object([:]))
                }
                do {
                    return .toolUse(id: id, name: name, input: try JSONValue.parse(json))
                } catch {
                    throw ModelError.malformedStream("tool_use \(name) input is \(error)")
                }
            }
        }
        return ModelResponse(id: id, model: model, content: content, stopReason: stopReason ?? "end_turn", usage: usage)
    }
}
