import DroverCore
import DroverTools

/// Decides when a thread's context must be compacted and what the compaction request holds:
/// the earlier part of the conversation and `ContextCompaction.prompt`, while the latest
/// messages, up to a quarter of the budget, are kept word for word after the summary.
struct ContextCompactor: Sendable {
    let policy: ContextPolicy
    let agent: AgentSnapshot
    /// Bytes every request carries besides its messages: the system prompt and tool definitions.
    let fixedBytes: Int
    /// The model's window in tokens: the configured one, or less where the model said so by
    /// refusing a prompt as too long.
    var window: Int

    init(policy: ContextPolicy, agent: AgentSnapshot, tools: [ModelToolDefinition]) {
        self.policy = policy
        self.agent = agent
        window = policy.window(for: agent.model)
        let toolBytes = tools.reduce(0) {
            $0 + $1.name.utf8.count + $1.description.utf8.count + $1.inputSchema.compactJSON.utf8.count + 48
        }
        fixedBytes = (agent.system?.utf8.count ?? 0) + toolBytes + 96
    }

    /// Input tokens allowed in one request.
    var budget: Int { policy.inputBudget(window: window, maxTokens: agent.maxTokens) }

    /// Tokens a request of `messageBytes` is estimated to carry.
    func tokens(messageBytes: Int, scale: TokenScale) -> Int {
        scale.tokens(bytes: fixedBytes + messageBytes)
    }

    /// What a refusal of a prompt as too long teaches: the model's own count of the request and
    /// its window. The Messages API says `prompt is too long: 210000 tokens > 200000 maximum`.
    static func promptTooLong(_ error: ModelError) -> (tokens: Int, maximum: Int)? {
        guard case .api(400, _, let message, _) = error, let match = message.firstMatch(of: /(\d+) tokens > (\d+) maximum/),
            let tokens = Int(match.1), let maximum = Int(match.2), tokens > maximum
        else { return nil }
        return (tokens, maximum)
    }

    /// Learns from a refusal of a request of `bytes` bytes; false when `error` is none.
    mutating func learn(from error: ModelError, bytes: Int, scale: inout TokenScale) -> Bool {
        guard let refusal = Self.promptTooLong(error) else { return false }
        scale.learn(bytes: bytes, usage: ModelUsage(inputTokens: refusal.tokens))
        window = min(window, refusal.maximum)
        return true
    }

    func needsCompaction(_ conversation: ContextBuilder.Conversation, scale: TokenScale) -> Bool {
        policy.enabled && tokens(messageBytes: conversation.size, scale: scale) > budget
    }

    /// What one compaction summarises and keeps.
    struct Plan: Sendable {
        /// The compaction request's messages: the earlier part, then the prompt.
        var messages: [ModelMessage]
        /// The first kept message's event; nil keeps none.
        var firstKeptEventId: String?
        /// The bytes of `messages`.
        var bytes: Int
    }

    /// The latest messages that start with an assistant message and fit in a quarter of the
    /// budget are kept (a tool result never loses its call); the rest is summarised. Blocks too
    /// large for the summary request to fit are cut down, saying so.
    func plan(_ conversation: ContextBuilder.Conversation, scale: TokenScale) -> Plan {
        let messages = conversation.messages
        let keepBytes = scale.bytes(tokens: budget / 4)
        var split = messages.count
        var tail = 0
        var index = messages.count - 1
        while index >= 1 {
            tail += conversation.sizes[index]
            if tail > keepBytes { break }
            if messages[index].role == .assistant { split = index }
            index -= 1
        }
        var earlier = Array(messages[..<split])
        let prompt = ModelContentBlock.text(ContextCompaction.prompt)
        if earlier.last?.role == .user {
            earlier[earlier.count - 1].content.append(prompt)
        } else {
            earlier.append(ModelMessage(role: .user, content: [prompt]))
        }
        var bytes = earlier.reduce(0) { $0 + ContextBuilder.size(of: $1) }
        // The summary request must fit too: halve the longest blocks until it does.
        let allowed = scale.bytes(tokens: budget) - fixedBytes
        var cap = earlier.flatMap(\.content).map(Self.textBytes).max() ?? 0
        while bytes > allowed, cap > 512 {
            cap /= 2
            earlier = earlier.map { message in
                var clipped = message
                clipped.content = message.content.map { Self.clip($0, to: cap) }
                return clipped
            }
            bytes = earlier.reduce(0) { $0 + ContextBuilder.size(of: $1) }
        }
        return Plan(messages: earlier, firstKeptEventId: split < messages.count ? conversation.starts[split] : nil, bytes: bytes)
    }

    static func textBytes(_ block: ModelContentBlock) -> Int {
        switch block {
        case .text(let text): text.utf8.count
        case .toolResult(_, let content, _): content.reduce(0) { $0 + ($1.text?.utf8.count ?? 0) }
        case .toolUse(_, _, let input): input.compactJSON.utf8.count
        case .thinking(let text, _): text.utf8.count
        }
    }

    static func clip(_ block: ModelContentBlock, to cap: Int) -> ModelContentBlock {
        func cut(_ text: String) -> String {
            guard text.utf8.count > cap else { return text }
            let kept = String(decoding: text.utf8.prefix(cap), as: UTF8.self)
            return kept + "\n[… \(text.utf8.count - cap) more bytes left out of the summary request …]"
        }
        switch block {
        case .text(let text) where text != ContextCompaction.prompt: return .text(cut(text))
        case .toolResult(let id, let content, let isError):
            return .toolResult(toolUseId: id, content: content.map { $0.text.map { ContentBlock.text(cut($0)) } ?? $0 }, isError: isError)
        default: return block
        }
    }
}

/// Tokens per byte of request, learnt from the model's own count: each response's input tokens
/// over the bytes of the request it answered. Until the first answer, a cautious guess.
struct TokenScale: Sendable {
    /// One token per three bytes is more than Claude's tokenizers count for English and code.
    var tokensPerByte = 1.0 / 3.0

    func tokens(bytes: Int) -> Int { Int((Double(bytes) * tokensPerByte).rounded(.up)) }
    func bytes(tokens: Int) -> Int { Int(Double(tokens) / tokensPerByte) }

    /// Learns from a request of `bytes` that the model counted as `usage`.
    mutating func learn(bytes: Int, usage: ModelUsage) {
        let counted = usage.inputTokens + usage.cacheReadInputTokens + usage.cacheCreationInputTokens
        guard counted > 0, bytes > 0 else { return }
        tokensPerByte = Double(counted) / Double(bytes)
    }
}
