import DroverCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A real HTTP server on loopback that speaks the Anthropic Messages API (`POST /v1/messages`,
/// streamed or not) and answers from a `ModelScript`. It is the only stand-in Drover's tests use,
/// and how offline jobs run with no model key. Everything it produces is labelled: text starts
/// with `[scripted]`, `model` reads `scripted/<requested model>`, and every response carries
/// `x-drover-scripted: 1`.
public final class ScriptedModelServer: Sendable {
    public let script: ModelScript
    public let port: Int
    private let task: Task<Void, Error>
    private let group: ServiceGroup
    private let faults: FaultCounter
    private let ledger: RequestLedger?

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public static let label = "[scripted] "

    private init(script: ModelScript, port: Int, task: Task<Void, Error>, group: ServiceGroup, faults: FaultCounter, ledger: RequestLedger?) {
        self.script = script
        self.port = port
        self.task = task
        self.group = group
        self.faults = faults
        self.ledger = ledger
    }

    /// Every Messages request answered so far, in order of arrival, when started with
    /// `recordingRequests` (for tests; a long-running server keeps none); else none.
    public func requests() async -> [ScriptedRequest] {
        await ledger?.all ?? []
    }

    /// Starts on 127.0.0.1 at `port` (0 picks a free one) and returns once it accepts connections.
    /// `items`: the fields of the job item each session works on, for `{{field}}` in a playbook.
    public static func start(
        script: ModelScript, port: Int = 0, items: ScriptedItemFields = ScriptedItemFields(), recordingRequests: Bool = false
    ) async throws
        -> ScriptedModelServer
    {
        let faults = FaultCounter()
        let ledger = recordingRequests ? RequestLedger() : nil
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        router.post("/v1/messages") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 32 << 20)
            let session = request.headers[sessionHeader]
            return await respond(script: script, faults: faults, items: items, session: session, body: String(buffer: body), ledger: ledger)
        }
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 32 << 20)
            return respondChat(script: script, body: String(buffer: body))
        }
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "drover.model-stub")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "drover-scripted-model"),
            onServerRunning: { channel in
                readyContinuation.yield(channel.localAddress?.port ?? port)
                readyContinuation.finish()
            },
            logger: logger
        )
        // Run under a service group so that stop() can shut down gracefully: cancelling
        // app.run() directly logs an error for every stop.
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let task = Task { try await group.run() }
        var bound: Int?
        for await value in ready { bound = value }
        guard let bound else {
            task.cancel()
            throw ModelScript.ScriptError(path: "127.0.0.1:\(port)", message: "the scripted model server did not start")
        }
        return ScriptedModelServer(script: script, port: bound, task: task, group: group, faults: faults, ledger: ledger)
    }

    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    // MARK: Answering

    static func respond(
        script: ModelScript, faults: FaultCounter, items: ScriptedItemFields, session: String?, body: String, ledger: RequestLedger? = nil
    ) async -> Response {
        guard let request = (try? JSONValue.parse(body))?.objectValue else {
            return error(400, "invalid_request_error", "the body is not a JSON object")
        }
        guard let model = request["model"]?.stringValue else {
            return error(400, "invalid_request_error", "model: required, a string")
        }
        guard case .array(let messages)? = request["messages"], !messages.isEmpty else {
            return error(400, "invalid_request_error", "messages: required, a non-empty array")
        }
        guard case .number? = request["max_tokens"] else {
            return error(400, "invalid_request_error", "max_tokens: required, a number")
        }
        let conversation = Conversation(messages: messages)
        let script = script.forSystem(Self.systemText(request["system"]))
        let inputTokens = script.inputTokens(bytes: body.utf8.count)
        if let window = script.contextWindow, inputTokens > window {
            await ledger?.record(ScriptedRequest(inputTokens: inputTokens, compaction: conversation.compactionRequested, refused: true))
            return error(400, "invalid_request_error", "prompt is too long: \(inputTokens) tokens > \(window) maximum")
        }
        await ledger?.record(ScriptedRequest(inputTokens: inputTokens, compaction: conversation.compactionRequested, refused: false))
        var turn: ModelScript.Turn
        if conversation.compactionRequested {
            turn = ModelScript.Turn(text: conversation.summary())
            turn.ttftMilliseconds = script.compactionTTFTMilliseconds
        } else if let playbook = script.playbook, script.turns.isEmpty {
            turn = conversation.playbookTurn(playbook, fields: session.map(items.fields(of:)) ?? [:])
        } else if conversation.step < script.turns.count {
            turn = script.turns[conversation.step]
        } else {
            return error(
                400, "invalid_request_error",
                "the script has \(script.turns.count) turns and this is request \(conversation.step + 1) of the conversation")
        }
        if let fault = turn.fault {
            let seen = await faults.next("\(conversation.key)#\(conversation.step)")
            if fault.times == nil || seen <= fault.times! {
                var response = error(
                    fault.status, faultType(fault.status), "scripted fault \(fault.status) (\(seen) of \(fault.times.map(String.init) ?? "every"))")
                if let after = fault.retryAfterSeconds { response.headers[.retryAfter] = String(after) }
                return response
            }
        }
        let message = MessagePlan(turn: turn, model: "scripted/\(model)", inputTokens: inputTokens)
        if request["stream"] == .bool(true) {
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            headers[scriptedHeader] = "1"
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    try await message.stream(into: &writer)
                })
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[scriptedHeader] = "1"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: message.json())))
    }

    /// The OpenAI-style endpoint: streamed chat completions from the same script.
    /// The system prompt as text: a string, or the text of its blocks.
    static func systemText(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)?: return text
        case .array(let blocks)?: return blocks.compactMap { $0.objectValue?["text"]?.stringValue }.joined(separator: "\n")
        default: return nil
        }
    }

    static func respondChat(script: ModelScript, body: String) -> Response {
        guard let request = (try? JSONValue.parse(body))?.objectValue, let model = request["model"]?.stringValue,
            case .array(let messages)? = request["messages"], !messages.isEmpty
        else {
            return error(400, "invalid_request_error", "model and a non-empty messages array are required")
        }
        let step = ChatCompletionsPlan.step(messages)
        guard step < script.turns.count else {
            return error(
                400, "invalid_request_error", "the script has \(script.turns.count) turns and this is request \(step + 1) of the conversation")
        }
        let plan = ChatCompletionsPlan(turn: script.turns[step], model: "scripted/\(model)", promptTokens: max(1, body.utf8.count / 4))
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[scriptedHeader] = "1"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in try await plan.stream(into: &writer) })
    }

    static let scriptedHeader = HTTPField.Name("x-drover-scripted")!
    static let sessionHeader = HTTPField.Name(ScriptedItemFields.sessionHeader)!

    static func faultType(_ status: Int) -> String {
        switch status {
        case 429: "rate_limit_error"
        case 529: "overloaded_error"
        default: "api_error"
        }
    }

    static func error(_ status: Int, _ type: String, _ message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[scriptedHeader] = "1"
        let body = (JSONValue.object(["type": .string("error"), "error": .object(["type": .string(type), "message": .string(message)])])).compactJSON
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// What the scripted model saw of one Messages request.
public struct ScriptedRequest: Sendable, Equatable {
    /// As the model counts them (`bytes_per_token`) and reports them in `usage`.
    public let inputTokens: Int
    /// The request asked for a summary (`ContextCompaction.prompt`).
    public let compaction: Bool
    /// Refused for being past `context_window`.
    public let refused: Bool
}

actor RequestLedger {
    private(set) var all: [ScriptedRequest] = []
    func record(_ request: ScriptedRequest) { all.append(request) }
}

/// Counts requests per conversation turn, for faults that happen N times.
actor FaultCounter {
    private var counts: [String: Int] = [:]

    func next(_ key: String) -> Int {
        counts[key, default: 0] += 1
        return counts[key]!
    }
}

/// What the request says about where the conversation is.
struct Conversation {
    /// Assistant messages so far: the turn of a script of `turns`.
    let step: Int
    let key: String
    /// The latest user message: what a playbook answers.
    let userText: String
    /// The tool calls answered since that message, each with its result.
    let results: [(call: String, text: String)]
    /// The last user text is `ContextCompaction.prompt`: the request wants a summary of the rest.
    let compactionRequested: Bool

    init(messages: [JSONValue]) {
        var assistants = 0
        var userText = ""
        var results: [(call: String, text: String)] = []
        var calls: [String: String] = [:]
        var afterText = false
        var afterReply = false
        var compactionRequested = false
        for message in messages {
            let fields = message.objectValue ?? [:]
            let role = fields["role"]?.stringValue
            if role == "assistant" {
                assistants += 1
                afterReply = false
            }
            let blocks: [JSONValue]
            switch fields["content"] {
            case .string(let text)?: blocks = [.object(["type": .string("text"), "text": .string(text)])]
            case .array(let items)?: blocks = items
            default: blocks = []
            }
            for block in blocks {
                let b = block.objectValue ?? [:]
                switch (role, b["type"]?.stringValue) {
                case ("user", "text"):
                    // A user message starts a new request: its text blocks are read as one.
                    let text = b["text"]?.stringValue ?? ""
                    compactionRequested = false
                    if text.hasPrefix(ContextCompaction.promptOpening) {
                        compactionRequested = true
                        continue
                    }
                    // A compacted context that starts at this model's own summary carries on
                    // where the summary says; any other summary is read as the user's words.
                    // A thread's reply is a result of the coordinator's work, not a new task: it
                    // fills the wait step it woke (docs/threads.md).
                    if text.hasPrefix(Self.threadReplyPrefix) {
                        let body = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
                        let from = String(body[0].dropFirst(Self.threadReplyPrefix.count)).trimmingCharacters(in: CharacterSet(charactersIn: ": "))
                        if afterReply, let last = results.indices.last {
                            // Replies woken together fill one wait step, one after another.
                            results[last].text += "\n\n" + (body.count > 1 ? String(body[1]) : "")
                        } else {
                            results.append(("reply from \(from)", body.count > 1 ? String(body[1]) : ""))
                        }
                        afterReply = true
                        afterText = false
                        continue
                    }
                    if let summary = Summary(continuation: text) {
                        userText = summary.task
                        results = summary.results
                        assistants += summary.modelTurns
                        afterText = false
                        continue
                    }
                    if afterText {
                        userText += "\n" + text
                    } else {
                        userText = text
                        results = []
                    }
                    afterText = true
                case ("assistant", "tool_use"):
                    afterText = false
                    if let id = b["id"]?.stringValue { calls[id] = Self.label(b["name"]?.stringValue ?? "", b["input"]) }
                case ("user", "tool_result"):
                    afterText = false
                    let text: String
                    switch b["content"] {
                    case .string(let value)?: text = value
                    case .array(let parts)?: text = parts.compactMap { $0.objectValue?["text"]?.stringValue }.joined(separator: "\n")
                    default: text = ""
                    }
                    // A call a crash cut off is taken again, as a model would: it does not count
                    // as the step's result.
                    if b["is_error"] == .bool(true), text.hasPrefix(Self.crashInterruptionPrefix) { continue }
                    results.append((calls[b["tool_use_id"]?.stringValue ?? ""] ?? "tool", text))
                default:
                    afterText = false
                    compactionRequested = false
                }
            }
        }
        self.step = assistants
        self.userText = userText
        self.results = results
        self.compactionRequested = compactionRequested
        self.key = String(FNV1a.hash(userText), radix: 16)
    }

    /// The scripted model's summary of the conversation: what it needs to carry on, and no more.
    func summary() -> String {
        Summary(task: userText, modelTurns: step, results: results).text
    }

    /// A summary the scripted model writes and reads back, one fact a line.
    struct Summary {
        var task: String
        var modelTurns: Int
        var results: [(call: String, text: String)]

        static let heading = "Summary by the scripted model, which lists what happened and does not think."
        static let summarised = "(summarised)"
        /// The last result is kept, cut to this many bytes; the others are counted.
        static let lastResultBytes = 300
        static let callBytes = 120
        /// More model turns or tool results than any context window holds.
        static let largestCount = 1_000_000

        init(task: String, modelTurns: Int, results: [(call: String, text: String)]) {
            self.task = task
            self.modelTurns = modelTurns
            self.results = results
        }

        var text: String {
            var lines = [Self.heading, "Task: " + JSONValue.string(task).compactJSON, "Model turns: \(modelTurns)", "Tool results: \(results.count)"]
            if let last = results.last {
                let cut = String(decoding: last.text.utf8.prefix(Self.lastResultBytes), as: UTF8.self)
                // The call's label on one line, short: it repeats the call's input.
                let call = String(decoding: last.call.utf8.prefix(Self.callBytes), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
                    .replacingOccurrences(of: "): ", with: ") ")
                lines.append("Last result (\(call)): " + JSONValue.string(cut).compactJSON)
            }
            return lines.joined(separator: "\n")
        }

        /// Reads a compacted context's opening text back, when this model wrote the summary.
        init?(continuation text: String) {
            guard text.hasPrefix(ContextCompaction.continuationOpening), text.contains(Self.heading) else { return nil }
            var task: String?
            var turns: Int?
            var count: Int?
            var last: (call: String, text: String)?
            for line in text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
                if line.hasPrefix("Task: ") {
                    task = (try? JSONValue.parse(String(line.dropFirst(6))))?.stringValue
                } else if line.hasPrefix("Model turns: ") {
                    turns = Int(line.dropFirst(13))
                } else if line.hasPrefix("Tool results: ") {
                    count = Int(line.dropFirst(14))
                } else if line.hasPrefix("Last result ("), let close = line.range(of: "): ") {
                    let call = String(line[line.index(line.startIndex, offsetBy: 13)..<close.lowerBound])
                    last = (call, (try? JSONValue.parse(String(line[close.upperBound...])))?.stringValue ?? "")
                }
            }
            // The text may be anyone's words dressed as a summary: counts out of reason make it
            // plain user text, never an index past the script or an array of a trillion.
            guard let task, let turns, let count, (0...Self.largestCount).contains(turns), (0...Self.largestCount).contains(count) else {
                return nil
            }
            var results = Array(repeating: (call: Self.summarised, text: Self.summarised), count: count)
            if let last, count > 0 { results[count - 1] = last }
            self.init(task: task, modelTurns: turns, results: results)
        }
    }

    /// How the brain shows a thread's reply to its coordinator (`ContextBuilder`).
    static let threadReplyPrefix = "Reply from thread "

    /// How the brain closes a tool call a crash or shutdown cut off (`TurnRunner.crashInterruption`).
    static let crashInterruptionPrefix = "interrupted by a worker crash"

    /// `bash: ls /workspace`: the tool and the input that says most about the call.
    static func label(_ name: String, _ input: JSONValue?) -> String {
        let fields = input?.objectValue ?? [:]
        for key in ["command", "file_path", "pattern", "url", "query"] {
            if let value = fields[key]?.stringValue { return "\(name): \(value)" }
        }
        return fields.isEmpty ? name : "\(name): \(JSONValue.object(fields).compactJSON)"
    }

    func playbookTurn(_ playbook: Playbook, fields: [String: String]) -> ModelScript.Turn {
        let context = Playbook.Context(userText: userText, fields: fields, results: results)
        let steps = playbook.steps(in: context)
        var turn: ModelScript.Turn
        if results.count < steps.count {
            let step = steps[results.count]
            if let wait = step.wait {
                turn = ModelScript.Turn(text: Playbook.fill(wait, context))
            } else {
                turn = ModelScript.Turn(toolUses: [(step.tool, Playbook.fill(step.input, context))])
            }
        } else {
            turn = ModelScript.Turn(text: Playbook.fill(playbook.final, context))
        }
        turn.ttftMilliseconds = playbook.ttftMilliseconds
        return turn
    }
}
