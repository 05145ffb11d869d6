import DroverCore
import DroverSessionLog
import DroverTools
import Foundation
import Logging

/// How a turn ended.
public struct TurnOutcome: Sendable, Equatable {
    /// `end_turn`, `requires_action`, `retries_exhausted`, `budget_reached`, `interrupted`,
    /// `agent_unreadable` (the stored agent did not decode: the session ends with a session.error), or
    /// `nothing_to_do` when the log held no pending input.
    public let stopReason: String
    public let modelRequests: Int

    public init(stopReason: String, modelRequests: Int) {
        self.stopReason = stopReason
        self.modelRequests = modelRequests
    }
}

/// Runs one turn of a session from its log, and keeps nothing afterwards (I3, docs/ARCHITECTURE.md).
///
/// Every event is appended under the worker's fence (I1, docs/ARCHITECTURE.md). A model response is appended in one
/// atomic append once complete, so a partial message never lands; a crash mid-stream simply
/// makes the next worker call the model again. Tool uses are appended before they run and their
/// results after, and a tool use found without a result on wake gets exactly one error result
/// instead of running again (I2, docs/ARCHITECTURE.md).
public final class TurnRunner: Sendable {
    public let log: SessionLog
    public let model: any ModelClient
    public let hand: any Hand
    /// The worker's MCP connections; nil offers no MCP tools.
    public let mcp: (any MCPHand)?
    public let deltas: DeltaPublisher
    public let defaultAgent: AgentSnapshot
    /// Provision the session's hands before the first model request instead of beside it. Only
    /// for comparison in benchmarks: lazy (false) is the point.
    public let eagerHands: Bool
    /// Called when a turn's first text delta arrives, for measuring time to first token.
    public let onFirstToken: (@Sendable (SessionID) -> Void)?
    private let logger = Logger(label: "drover.turn")

    public static let crashInterruption = "interrupted by a worker crash or shutdown; the sandbox may hold partial effects"
    public static let userInterruption = "interrupted by user.interrupt"

    public init(
        log: SessionLog, model: any ModelClient, hand: any Hand, deltas: DeltaPublisher, defaultAgent: AgentSnapshot,
        eagerHands: Bool = false, onFirstToken: (@Sendable (SessionID) -> Void)? = nil, mcp: (any MCPHand)? = nil
    ) {
        self.mcp = mcp
        self.log = log
        self.model = model
        self.hand = hand
        self.deltas = deltas
        self.defaultAgent = defaultAgent
        self.eagerHands = eagerHands
        self.onFirstToken = onFirstToken
    }

    public func run(session: SessionID, fence: SessionFence) async throws -> TurnOutcome {
        let started = ContinuousClock.now
        let snapshot = try await log.wake(session)
        let agent: AgentSnapshot
        do {
            agent = try await log.agent(session).map { try JSONDecoder().decode(AgentSnapshot.self, from: Data($0.utf8)) } ?? defaultAgent
        } catch let error as DecodingError {
            // Never another agent in its place: the session ends, saying why.
            guard Self.needsTurn(snapshot.events) else { return TurnOutcome(stopReason: "nothing_to_do", modelRequests: 0) }
            let state = TurnState(events: snapshot.events)
            try await append(session, fence, state, [Self.unreadableAgent(error), NewEvent(type: .sessionStatusTerminated)])
            return TurnOutcome(stopReason: "agent_unreadable", modelRequests: 0)
        }
        // Read once per turn, and typed from here on: the hands never parse it again. Never an
        // environment without the packages the session was created with: it ends instead.
        let environment: EnvironmentConfig
        do {
            environment = try await log.environment(session).map { try EnvironmentConfig.parse(try JSONValue.parse($0)) } ?? .none
        } catch let error as SessionLogError {
            throw error
        } catch {
            guard Self.needsTurn(snapshot.events) else { return TurnOutcome(stopReason: "nothing_to_do", modelRequests: 0) }
            let state = TurnState(events: snapshot.events)
            try await append(session, fence, state, [Self.unreadableEnvironment(error), NewEvent(type: .sessionStatusTerminated)])
            return TurnOutcome(stopReason: "environment_unreadable", modelRequests: 0)
        }
        // Lazy hands: provisioning starts now and runs beside the first model request.
        if eagerHands {
            await hand.prepare(session: session, environment: environment)
        } else {
            Task { await hand.prepare(session: session, environment: environment) }
        }

        let state = TurnState(events: snapshot.events, environment: environment)
        // A crash can leave a model call and tool uses open: close each exactly once (I2, docs/ARCHITECTURE.md).
        var repairs = ContextBuilder.danglingModelRequests(in: snapshot.events).map {
            Self.modelRequestEnd(start: $0.id, usage: ModelUsage(), isError: true)
        }
        repairs += ContextBuilder.danglingToolUses(in: snapshot.events).map { Self.toolResult(for: $0, text: Self.crashInterruption) }
        if !repairs.isEmpty {
            try await append(session, fence, state, repairs)
        }
        guard Self.needsTurn(state.events) else {
            return TurnOutcome(stopReason: "nothing_to_do", modelRequests: 0)
        }
        // Some answers arrived but not all: idle again with the remainder.
        let pending = ContextBuilder.pendingCustomToolUses(in: state.events) + ContextBuilder.awaitingConfirmation(in: state.events)
        if !pending.isEmpty {
            try await append(session, fence, state, [Self.requiresAction(pending.map(\.id))])
            return TurnOutcome(stopReason: "requires_action", modelRequests: 0)
        }
        if state.events.last(where: { $0.type.hasPrefix("session.status_") })?.type != "session.status_running" {
            try await append(session, fence, state, [NewEvent(type: .sessionStatusRunning)])
        }
        var hands = TurnHands(builtIn: hand, mcp: mcp, agent: agent)
        await hands.listMCPTools()
        if !hands.unreachable.isEmpty {
            // As in Managed Agents: a server that cannot be reached is a session.error, not a failed session.
            try await append(session, fence, state, hands.unreachable.map { Self.mcpConnectionFailed(server: $0.server, message: $0.message) })
        }
        // Confirmed tool uses run now; denied ones get the denial as their result.
        let answers = ContextBuilder.confirmations(in: state.events)
        for use in ContextBuilder.openToolUses(in: state.events) where use.type == "agent.tool_use" || use.type == "agent.mcp_tool_use" {
            guard let answer = answers[use.id] else { continue }
            let fields = use.value.objectValue ?? [:]
            let isMCP = use.type == "agent.mcp_tool_use"
            var name = fields["name"]?.stringValue ?? ""
            if isMCP { name = MCPToolName.qualified(server: fields["mcp_server_name"]?.stringValue ?? "", tool: name) }
            let result: ToolResult =
                answer.allow
                ? try await execute(
                    hands, name, fields["input"] ?? .object([:]), session: session, fence: fence, timeout: agent.toolTimeoutSeconds,
                    environment: state.environment)
                : .text("the user denied this tool call" + (answer.message.map { ": \($0)" } ?? ""), isError: true)
            try await append(session, fence, state, [Self.toolResult(useId: use.id, result: result, mcp: isMCP)])
        }
        let watchFrom = state.lastSeq
        let sink = deltas.sink(for: session)
        defer { sink.finish() }

        enum End: Sendable { case finished(TurnOutcome), interrupted }
        let end: End = try await withThrowingTaskGroup(of: End.self) { group in
            group.addTask { [hands] in .finished(try await self.loop(session, fence, agent, hands, state, sink, started)) }
            group.addTask {
                for try await event in self.log.tail(session, afterSeq: watchFrom) where event.type == "user.interrupt" {
                    return .interrupted
                }
                try await Task.sleep(for: .seconds(365 * 86400))
                return .interrupted
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        switch end {
        case .finished(let outcome):
            return outcome
        case .interrupted:
            try await state.refresh(log, session)
            var closing: [NewEvent] = ContextBuilder.danglingToolUses(in: state.events).map { Self.toolResult(for: $0, text: Self.userInterruption) }
            if let open = state.openModelRequest {
                closing.append(Self.modelRequestEnd(start: open, usage: ModelUsage(), isError: true))
            }
            closing.append(NewEvent(type: .sessionStatusIdle, fields: ["stop_reason": .object(["type": .string("end_turn")])]))
            try await append(session, fence, state, closing)
            return TurnOutcome(stopReason: "interrupted", modelRequests: state.modelRequests)
        }
    }

    private func loop(
        _ session: SessionID, _ fence: SessionFence, _ agent: AgentSnapshot, _ hands: TurnHands, _ state: TurnState, _ sink: DeltaSink,
        _ started: ContinuousClock.Instant
    ) async throws -> TurnOutcome {
        while true {
            if state.modelRequests >= agent.maxModelRequestsPerTurn {
                try await finish(session, fence, state, started, stopReason: ["type": .string("budget_reached")])
                return TurnOutcome(stopReason: "budget_reached", modelRequests: state.modelRequests)
            }
            state.modelRequests += 1
            let startSeq = try await append(session, fence, state, [NewEvent(type: .spanModelRequestStart)]).firstSeq
            let startId = SessionLog.eventID(session, seq: startSeq)
            state.openModelRequest = startId
            let request = ModelRequest(
                model: agent.model, system: agent.system, messages: state.messages,
                tools: hands.definitions
                    + agent.customTools.map { ModelToolDefinition(name: $0.name, description: $0.description, inputSchema: $0.inputSchema) },
                maxTokens: agent.maxTokens
            )
            let customNames = Set(agent.customTools.map(\.name))
            var response: ModelResponse?
            var rescheduled = false
            var firstToken = state.modelRequests == 1
            do {
                for try await event in model.stream(request) {
                    switch event {
                    case .textDelta(let index, let text):
                        if firstToken {
                            firstToken = false
                            onFirstToken?(session)
                        }
                        sink.send(["type": .string("content_delta"), "index": .number(Double(index)), "text": .string(text)])
                    case .retrying(let attempt, let delay, let reason):
                        logger.info("model request retrying", metadata: ["session": "\(session)", "attempt": "\(attempt)", "reason": "\(reason)"])
                        sink.send(["type": .string("reset")])
                        try await append(session, fence, state, [NewEvent(type: .sessionStatusRescheduled)])
                        rescheduled = true
                        _ = delay
                    case .started where rescheduled:
                        rescheduled = false
                        try await append(session, fence, state, [NewEvent(type: .sessionStatusRunning)])
                    case .completed(let message):
                        response = message
                    default:
                        break
                    }
                }
            } catch let error as ModelError {
                let exhausted: Bool
                if case .retriesExhausted = error { exhausted = true } else { exhausted = false }
                state.openModelRequest = nil
                try await append(
                    session, fence, state,
                    [
                        Self.modelRequestEnd(start: startId, usage: ModelUsage(), isError: true),
                        NewEvent(
                            type: .sessionError,
                            fields: [
                                "error": .object([
                                    "type": .string(
                                        error.description.contains("overloaded") ? "model_overloaded_error" : "model_request_failed_error"),
                                    "message": .string(error.description),
                                    "retry_status": .object(["type": .string(exhausted ? "exhausted" : "terminal")]),
                                ])
                            ]),
                    ])
                try await finish(session, fence, state, started, stopReason: ["type": .string("retries_exhausted")])
                return TurnOutcome(stopReason: "retries_exhausted", modelRequests: state.modelRequests)
            }
            guard let response else { throw ModelError.malformedStream("the stream ended without a message") }
            if rescheduled {
                try await append(session, fence, state, [NewEvent(type: .sessionStatusRunning)])
            }

            var events: [NewEvent] = []
            if response.content.contains(where: { if case .thinking = $0 { return true } else { return false } }) {
                events.append(NewEvent(type: .agentThinking))
            }
            let texts: [JSONValue] = response.content.compactMap {
                if case .text(let text) = $0, !text.isEmpty { return .object(["type": .string("text"), "text": .string(text)]) }
                return nil
            }
            if !texts.isEmpty { events.append(NewEvent(type: .agentMessage, fields: ["content": .array(texts)])) }
            let toolUses: [(name: String, input: JSONValue)] = response.content.compactMap {
                if case .toolUse(_, let name, let input) = $0 { return (name, input) }
                return nil
            }
            let firstToolIndex = events.count
            for use in toolUses {
                if customNames.contains(use.name) {
                    events.append(NewEvent(type: .agentCustomToolUse, fields: ["name": .string(use.name), "input": use.input]))
                } else {
                    let route = hands.route(use.name)
                    let asks = hands.asks(route, name: use.name)
                    var fields: [String: JSONValue] = [
                        "name": .string(use.name), "input": use.input,
                        "evaluated_permission": .string(asks ? "ask" : "allow"),
                        "evaluation": .object(["type": .string(asks ? "always_ask" : "always_allow")]),
                    ]
                    if case .mcp(let server, let tool) = route {
                        fields["mcp_server_name"] = .string(server.name)
                        fields["name"] = .string(tool)
                    }
                    events.append(NewEvent(type: route.isMCP ? .agentMcpToolUse : .agentToolUse, fields: fields))
                }
            }
            events.append(Self.modelRequestEnd(start: startId, usage: response.usage, isError: false))
            let appended = try await append(session, fence, state, events)
            state.openModelRequest = nil

            guard !toolUses.isEmpty else {
                let reason = response.stopReason == "refusal" ? "refusal" : "end_turn"
                try await finish(session, fence, state, started, stopReason: ["type": .string(reason)])
                return TurnOutcome(stopReason: reason, modelRequests: state.modelRequests)
            }
            var waitingOnClient: [String] = []
            for (offset, use) in toolUses.enumerated() {
                let useId = SessionLog.eventID(session, seq: appended.firstSeq + Int64(firstToolIndex + offset))
                let route = hands.route(use.name)
                if customNames.contains(use.name) || hands.asks(route, name: use.name) {
                    waitingOnClient.append(useId)
                    continue
                }
                if !hands.isEnabled(route, name: use.name) {
                    try await append(
                        session, fence, state,
                        [
                            Self.toolResult(
                                useId: useId, result: .text("the tool \(use.name) is not enabled for this agent", isError: true), mcp: route.isMCP)
                        ])
                    continue
                }
                let result = try await execute(
                    hands, use.name, use.input, session: session, fence: fence, timeout: agent.toolTimeoutSeconds, environment: state.environment)
                try await append(session, fence, state, [Self.toolResult(useId: useId, result: result, mcp: route.isMCP)])
            }
            if !waitingOnClient.isEmpty {
                try await finish(
                    session, fence, state, started,
                    stopReason: ["type": .string("requires_action"), "event_ids": .array(waitingOnClient.map(JSONValue.string))])
                return TurnOutcome(stopReason: "requires_action", modelRequests: state.modelRequests)
            }
        }
    }

    private func execute(
        _ hands: TurnHands, _ name: String, _ input: JSONValue, session: SessionID, fence: SessionFence, timeout: Double,
        environment: EnvironmentConfig
    ) async throws -> ToolResult {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let context = ToolContext(session: session, fence: fence, deadline: deadline, environment: environment)
        do {
            return try await withThrowingTaskGroup(of: ToolResult?.self) { group in
                group.addTask { try await hands.execute(hands.route(name), name: name, input: input, context: context) }
                group.addTask {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                return first ?? .text("\(name) timed out after \(timeout)s and was stopped", isError: true)
            }
        } catch is CancellationError {
            // An interrupt or a drain: whoever cancelled records why.
            throw CancellationError()
        } catch {
            return .text("\(name) failed: \(error)", isError: true)
        }
    }

    private func finish(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ started: ContinuousClock.Instant, stopReason: [String: JSONValue]
    ) async throws {
        let usage = Self.cumulativeUsage(state.events)
        let previousActive = state.events.last(where: { $0.type == "session.usage" })?.value.objectValue?["usage"]?.objectValue?["active_seconds"]
        var active = 0.0
        if case .number(let seconds)? = previousActive { active = seconds }
        active += (ContinuousClock.now - started).seconds
        try await append(
            session, fence, state,
            [
                NewEvent(
                    type: .sessionUsage,
                    fields: [
                        "usage": .object([
                            "input_tokens": .number(Double(usage.inputTokens)), "output_tokens": .number(Double(usage.outputTokens)),
                            "cache_read_input_tokens": .number(Double(usage.cacheReadInputTokens)),
                            "active_seconds": .number((active * 1000).rounded() / 1000),
                        ])
                    ]),
                NewEvent(type: .sessionStatusIdle, fields: ["stop_reason": .object(stopReason)]),
            ])
    }

    @discardableResult
    private func append(_ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ events: [NewEvent]) async throws -> AppendResult {
        let result = try await log.append(session, events, fence: fence)
        try await state.refresh(log, session)
        return result
    }

    // MARK: Event shapes

    static func toolResult(for use: StoredEvent, text: String) -> NewEvent {
        let type: SessionEventType = use.type == "agent.mcp_tool_use" ? .agentMcpToolResult : .agentToolResult
        let key = use.type == "agent.mcp_tool_use" ? "mcp_tool_use_id" : "tool_use_id"
        return NewEvent(
            type: type,
            fields: [
                key: .string(use.id), "is_error": .bool(true),
                "content": .array([.object(["type": .string("text"), "text": .string(text)])]),
            ])
    }

    static func toolResult(useId: String, result: ToolResult, mcp: Bool = false) -> NewEvent {
        let content: [JSONValue] = result.content.compactMap {
            if case .text(let text) = $0 { return .object(["type": .string("text"), "text": .string(text)]) }
            return nil
        }
        return NewEvent(
            type: mcp ? .agentMcpToolResult : .agentToolResult,
            fields: [
                (mcp ? "mcp_tool_use_id" : "tool_use_id"): .string(useId), "is_error": .bool(result.isError), "content": .array(content),
            ])
    }

    static func unreadableAgent(_ error: DecodingError) -> NewEvent {
        let path: String
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
            path = WirePath.field("agent", WirePath.from(context.codingPath))
        @unknown default:
            path = "agent"
        }
        return unreadable("the session's stored agent cannot be read (at \(path)), so no turn runs: \(error.localizedDescription)")
    }

    static func unreadableEnvironment(_ error: any Error) -> NewEvent {
        unreadable("the session's stored environment config cannot be read, so no turn runs: \(error)")
    }

    /// A terminal `session.error` for something the session was created with that cannot be read.
    private static func unreadable(_ message: String) -> NewEvent {
        NewEvent(
            type: .sessionError,
            fields: [
                "error": .object([
                    "type": .string("unknown_error"),
                    "message": .string(message),
                    "retry_status": .object(["type": .string("terminal")]),
                ])
            ])
    }

    static func mcpConnectionFailed(server: String, message: String) -> NewEvent {
        NewEvent(
            type: .sessionError,
            fields: [
                "error": .object([
                    "type": .string("mcp_connection_failed_error"), "mcp_server_name": .string(server),
                    "message": .string("cannot reach MCP server \(server): \(message)"),
                    "retry_status": .object(["type": .string("terminal")]),
                ])
            ])
    }

    static func requiresAction(_ ids: [String]) -> NewEvent {
        NewEvent(
            type: .sessionStatusIdle,
            fields: ["stop_reason": .object(["type": .string("requires_action"), "event_ids": .array(ids.map(JSONValue.string))])])
    }

    static func modelRequestEnd(start: String, usage: ModelUsage, isError: Bool) -> NewEvent {
        NewEvent(
            type: .spanModelRequestEnd,
            fields: [
                "model_request_start_id": .string(start), "is_error": .bool(isError),
                "model_usage": .object([
                    "input_tokens": .number(Double(usage.inputTokens)), "output_tokens": .number(Double(usage.outputTokens)),
                    "cache_creation_input_tokens": .number(Double(usage.cacheCreationInputTokens)),
                    "cache_read_input_tokens": .number(Double(usage.cacheReadInputTokens)),
                ]),
            ])
    }

    static func cumulativeUsage(_ events: [StoredEvent]) -> ModelUsage {
        var total = ModelUsage()
        for event in events where event.type == "span.model_request_end" {
            let usage = event.value.objectValue?["model_usage"]?.objectValue ?? [:]
            total.inputTokens += usage["input_tokens"]?.intValue ?? 0
            total.outputTokens += usage["output_tokens"]?.intValue ?? 0
            total.cacheCreationInputTokens += usage["cache_creation_input_tokens"]?.intValue ?? 0
            total.cacheReadInputTokens += usage["cache_read_input_tokens"]?.intValue ?? 0
        }
        return total
    }

    /// True when input arrived after the last idle, or a turn was cut off mid-way.
    static func needsTurn(_ events: [StoredEvent]) -> Bool {
        guard let lastIdle = events.lastIndex(where: { $0.type == "session.status_idle" || $0.type == "session.status_terminated" }) else {
            return events.contains { $0.type.hasPrefix("user.") && $0.type != "user.interrupt" }
        }
        if events[lastIdle].type == "session.status_terminated" { return false }
        return events[(lastIdle + 1)...].contains { event in
            (event.type.hasPrefix("user.") && event.type != "user.interrupt") || event.type == "session.status_running"
        }
    }
}

/// The turn's view of the log, kept current after each append.
final class TurnState: @unchecked Sendable {
    private let lock = NSLock()
    private var _events: [StoredEvent]
    private var _conversation = ContextBuilder.Conversation()
    private var _openModelRequest: String?
    private var _modelRequests = 0

    /// The session's environment `config`, handed to the tools.
    let environment: EnvironmentConfig

    init(events: [StoredEvent], environment: EnvironmentConfig = .none) {
        _events = events
        _conversation.add(contentsOf: events)
        self.environment = environment
    }

    var events: [StoredEvent] { lock.withLock { _events } }
    /// The model's view of the log, kept current with it.
    var messages: [ModelMessage] { lock.withLock { _conversation.messages } }
    var lastSeq: Int64 { lock.withLock { _events.last?.seq ?? 0 } }
    var openModelRequest: String? {
        get { lock.withLock { _openModelRequest } }
        set { lock.withLock { _openModelRequest = newValue } }
    }
    var modelRequests: Int {
        get { lock.withLock { _modelRequests } }
        set { lock.withLock { _modelRequests = newValue } }
    }

    func refresh(_ log: SessionLog, _ session: SessionID) async throws {
        let newer = try await log.read(session, afterSeq: lastSeq, limit: 10_000)
        lock.withLock {
            _events += newer
            _conversation.add(contentsOf: newer)
        }
    }
}
