import DroverCore
import DroverMetrics
import DroverSelfHosted
import DroverSessionLog
import DroverTools
import Foundation
import Logging

/// How a turn ended.
public struct TurnOutcome: Sendable, Equatable {
    public enum Ending: Sendable, Equatable, CustomStringConvertible {
        /// The session went idle for this reason.
        case idle(StopReason)
        /// A `user.interrupt` stopped the turn; the session went idle with `end_turn`.
        case interrupted
        /// Something the session was created with cannot be read: the session ended with a
        /// `session.error` and `session.status_terminated`.
        case terminated(Unreadable)
        /// The log held no pending input.
        case nothingToDo
        /// Tool calls are with a self-hosted environment's worker. The session stays running and
        /// holds no worker: their `user.tool_result` events queue the next turn.
        case awaitingHands
        /// A coordinator's threads owe it replies. The session stays running and holds no
        /// worker: the last reply queues the next turn.
        case awaitingThreads

        public var description: String {
            switch self {
            case .idle(let reason): reason.type
            case .interrupted: "interrupted"
            case .terminated(let unreadable): "\(unreadable.rawValue)_unreadable"
            case .nothingToDo: "nothing_to_do"
            case .awaitingHands: "awaiting_hands"
            case .awaitingThreads: "awaiting_threads"
            }
        }
    }

    /// What a session was created with and a turn could not read.
    public enum Unreadable: String, Sendable {
        case agent, environment
    }

    public let ending: Ending
    public let modelRequests: Int

    public init(_ ending: Ending, modelRequests: Int) {
        self.ending = ending
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
    /// The work queues of self-hosted environments, for sessions whose hands are elsewhere.
    let work: WorkQueue
    /// Hears a `user.interrupt` for any turn this runner runs: one subscription for them all.
    let interrupts: SessionSignal
    /// When a thread's context is compacted (docs/compaction.md).
    public let context: ContextPolicy
    private let logger = Logger(label: "drover.turn")

    public static let crashInterruption = "interrupted by a worker crash or shutdown; the sandbox may hold partial effects"
    public static let userInterruption = "interrupted by user.interrupt"

    public init(
        log: SessionLog, model: any ModelClient, hand: any Hand, deltas: DeltaPublisher, defaultAgent: AgentSnapshot,
        eagerHands: Bool = false, onFirstToken: (@Sendable (SessionID) -> Void)? = nil, mcp: (any MCPHand)? = nil,
        context: ContextPolicy = ContextPolicy()
    ) {
        self.mcp = mcp
        self.context = context
        self.log = log
        self.model = model
        self.hand = hand
        self.deltas = deltas
        self.defaultAgent = defaultAgent
        self.eagerHands = eagerHands
        self.onFirstToken = onFirstToken
        self.work = WorkQueue(redis: log.redis)
        self.interrupts = SessionSignal.interrupted(log)
    }

    /// Runs the session's turn. `threads` starts and messages a coordinator's threads, and
    /// carries a thread's replies back: without it, a coordinator's thread tools answer errors.
    public func run(session: SessionID, fence: SessionFence, threads: ThreadMessenger? = nil) async throws -> TurnOutcome {
        let started = ContinuousClock.now
        do {
            let outcome = try await runTurn(session: session, fence: fence, started: started, threads: threads)
            if outcome.ending != .nothingToDo {
                let took = ContinuousClock.now - started
                DroverMetrics.turnDuration.record(duration: took)
                DroverMetrics.activeSessionSeconds.increment(by: took.seconds)
            }
            DroverMetrics.turns(outcome.ending.description).increment()
            return outcome
        } catch is CancellationError {
            DroverMetrics.turns("cancelled").increment()
            throw CancellationError()
        } catch {
            DroverMetrics.turns("error").increment()
            throw error
        }
    }

    private func runTurn(
        session: SessionID, fence: SessionFence, started: ContinuousClock.Instant, threads: ThreadMessenger?
    ) async throws -> TurnOutcome {
        // Both reads in flight at once, on the shared connections.
        async let createdWith = log.createdWith(session)
        let snapshot = try await log.wake(session)
        let stored = try await createdWith
        let agent: AgentSnapshot
        do {
            agent = try SessionLog.agentSnapshot(json: stored.agent) ?? defaultAgent
        } catch let error as DecodingError {
            // Never another agent in its place: the session ends, saying why.
            guard Self.needsTurn(snapshot.events) else { return TurnOutcome(.nothingToDo, modelRequests: 0) }
            let state = TurnState(events: snapshot.events)
            try await append(session, fence, state, [Self.unreadableAgent(error), .sessionStatusTerminated])
            return TurnOutcome(.terminated(.agent), modelRequests: 0)
        }
        // Read once per turn, and typed from here on: the hands never parse it again. Never an
        // environment without the packages the session was created with: it ends instead.
        let environment: EnvironmentConfig
        do {
            environment = try SessionLog.environmentConfig(json: stored.environment)
        } catch let error as SessionLogError {
            throw error
        } catch {
            guard Self.needsTurn(snapshot.events) else { return TurnOutcome(.nothingToDo, modelRequests: 0) }
            let state = TurnState(events: snapshot.events)
            try await append(session, fence, state, [Self.unreadableEnvironment(error), .sessionStatusTerminated])
            return TurnOutcome(.terminated(.environment), modelRequests: 0)
        }
        // Eager hands are ready before the first model request; lazy ones start once it is on
        // the wire, so that provisioning overlaps the model's time to first token and takes no
        // CPU from sending the request. Only a tool call waits for them. A self-hosted
        // environment's hands are its workers, asked for once the turn needs them.
        let state = TurnState(events: snapshot.events, environment: environment, origin: agent.thread, threads: threads)
        if environment.selfHostedEnvironment == nil {
            if eagerHands {
                await hand.prepare(session: session, environment: environment)
            } else {
                state.awaitHands()
            }
        }
        // A crash can leave a model call and tool uses open: close each exactly once (I2, docs/ARCHITECTURE.md).
        // Calls with a self-hosted worker are not cut off by a crash here: the worker answers them,
        // or its lease lapses and the sweeper does (RemoteHandsSweeper).
        var repairs = ContextBuilder.danglingModelRequests(in: snapshot.events).map { Self.failedModelRequestEnd(start: $0.id) }
        let dangling = Self.danglingLocalCalls(snapshot.events, environment)
        repairs += dangling.filter { !Self.isThreadCall($0, agent) }.map { Self.toolResult(for: $0, text: Self.crashInterruption) }
        if !repairs.isEmpty {
            try await append(session, fence, state, repairs)
        }
        // A thread tool call cut off by a crash is run again: it starts and sends nothing twice.
        for use in dangling where Self.isThreadCall(use, agent) {
            try await runThreadCall(use, session, fence, agent, state)
        }
        guard Self.needsTurn(state.events) else {
            // A reply lost to a crash between the thread's idle and its delivery goes now, once.
            if let origin = agent.thread { try await redeliverReply(session, origin, state) }
            return TurnOutcome(.nothingToDo, modelRequests: 0)
        }
        if agent.roster != nil, let waiting = try await waitForThreads(session, fence, state, started) {
            return waiting
        }
        // Some answers arrived but not all: idle again with the remainder.
        let pending = ContextBuilder.pendingCustomToolUses(in: state.events) + ContextBuilder.awaitingConfirmation(in: state.events)
        if !pending.isEmpty {
            let reason = StopReason.requiresAction(eventIds: pending.map(\.id))
            try await append(session, fence, state, [.sessionStatusIdle(SessionStatusIdle(stopReason: reason))])
            return TurnOutcome(.idle(reason), modelRequests: 0)
        }
        if let remote = environment.selfHostedEnvironment {
            // The interrupt of a session whose calls are with a worker: no turn is running to see it.
            if let interrupt = state.events.last(where: { $0.kind == .userInterrupt }),
                let waiting = Self.remoteCallsRunning(state.events, environment), waiting.contains(where: { $0.seq < interrupt.seq })
            {
                try await closeRemoteCalls(session, fence, state, text: Self.userInterruption)
                try await append(session, fence, state, [.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn))])
                try await work.stopSession(environment: remote, session: session)
                return TurnOutcome(.interrupted, modelRequests: 0)
            }
            try await work.ensure(environment: remote, session: session)
        }
        // The running status goes out with the first model request's start, in one append,
        // unless something that may take a while comes first: MCP servers to list, confirmed
        // tools to run, a self-hosted worker's calls. Then it goes out now, as before.
        var announcing: [SessionEventPayload] = []
        if !state.showsRunning {
            announcing = [.sessionStatusRunning]
            let slowFirst =
                !agent.mcpServers.isEmpty || environment.selfHostedEnvironment != nil
                || !ContextBuilder.openToolUses(in: state.events).isEmpty
            if slowFirst {
                try await append(session, fence, state, announcing)
                announcing = []
            }
        }
        var hands = TurnHands(builtIn: hand, mcp: mcp, agent: agent)
        await hands.listMCPTools(session: session)
        if !hands.unreachable.isEmpty {
            // As in Managed Agents: a server that cannot be reached is a session.error, not a failed session.
            try await append(session, fence, state, hands.unreachable.map { Self.mcpConnectionFailed(server: $0.server, message: $0.message) })
        }
        // Confirmed tool uses run now; denied ones get the denial as their result.
        let answers = ContextBuilder.confirmations(in: state.events)
        for use in ContextBuilder.openToolUses(in: state.events) {
            let name: String
            let input: [String: JSONValue]
            switch use.payload {
            case .agentToolUse(let tool)?: (name, input) = (tool.name, tool.input)
            case .agentMCPToolUse(let tool)?: (name, input) = (MCPToolName.qualified(server: tool.mcpServerName, tool: tool.name), tool.input)
            default: continue
            }
            guard let answer = answers[use.id] else { continue }
            // A confirmed call of a self-hosted worker's tool is its to run; a denied one is closed here.
            if Self.runsRemotely(use, environment) {
                if answer.result != .allow {
                    try await appendRemoteResult(session, fence, state, use.id, Self.denial(answer))
                }
                continue
            }
            let result: ToolResult =
                answer.result == .allow
                ? try await execute(
                    hands, name, .object(input), session: session, fence: fence, timeout: agent.toolTimeoutSeconds, environment: state.environment)
                : Self.denial(answer)
            try await append(session, fence, state, [Self.toolResult(answering: use, result)])
        }
        if Self.remoteCallsRunning(state.events, environment)?.isEmpty == false {
            return TurnOutcome(.awaitingHands, modelRequests: 0)
        }
        let watchFrom = state.lastSeq
        let sink = deltas.sink(for: session)
        defer { sink.finish() }

        enum End: Sendable { case finished(TurnOutcome), interrupted }
        let end: End = try await withThrowingTaskGroup(of: End.self) { group in
            group.addTask { [hands, announcing] in
                .finished(try await self.loop(session, fence, agent, hands, state, sink, started, announcing: announcing))
            }
            group.addTask {
                try await self.interruption(of: session, after: watchFrom)
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
            if let remote = environment.selfHostedEnvironment {
                try await closeRemoteCalls(session, fence, state, text: Self.userInterruption)
                try await work.stopSession(environment: remote, session: session)
            }
            var closing = Self.danglingLocalCalls(state.events, environment).map { Self.toolResult(for: $0, text: Self.userInterruption) }
            if let open = state.openModelRequest {
                closing.append(Self.failedModelRequestEnd(start: open))
            }
            closing.append(.sessionStatusIdle(SessionStatusIdle(stopReason: .endTurn)))
            await hand.turnEnding(session: session)
            // Interrupted before the running status went out with the first request: every turn
            // shows one, for whoever waits for it.
            if !state.showsRunning {
                closing.insert(.sessionStatusRunning, at: 0)
            }
            let closed = try await append(session, fence, state, closing)
            if let origin = agent.thread, let threads {
                try await threads.reply(from: session, origin: origin, content: nil, stopReason: .endTurn, idleSeq: closed.lastSeq)
            }
            return TurnOutcome(.interrupted, modelRequests: state.modelRequests)
        }
    }

    /// Returns once a `user.interrupt` past `seq` is in the session's log.
    private func interruption(of session: SessionID, after seq: Int64) async throws {
        while true {
            await interrupts.wait(session, pastSeq: seq)
            try Task.checkCancellation()
            // The signal lets its waiters go when it stops, too: the session's meta says whether
            // this was an interrupt. Unreadable (Redis is away) is no interrupt; the wait goes on.
            if let latest = try? await log.interruptSeqs([session]).first, let latest, latest > seq { return }
        }
    }

    private func loop(
        _ session: SessionID, _ fence: SessionFence, _ agent: AgentSnapshot, _ hands: TurnHands, _ state: TurnState, _ sink: DeltaSink,
        _ started: ContinuousClock.Instant, announcing: [SessionEventPayload]
    ) async throws -> TurnOutcome {
        // Events that go out with the first request's start (the running status).
        var announcing = announcing
        let tools =
            hands.definitions
            + agent.customTools.map { ModelToolDefinition(name: $0.name, description: $0.description, inputSchema: $0.inputSchema) }
            + (agent.roster.map(ThreadTools.definitions) ?? [])
        var compactor = ContextCompactor(policy: context, agent: agent, tools: tools)
        while true {
            if state.modelRequests >= agent.maxModelRequestsPerTurn {
                if !announcing.isEmpty { try await append(session, fence, state, announcing) }
                return try await finish(session, fence, state, started, .budgetReached)
            }
            while compactor.needsCompaction(state.conversation, scale: state.scale) {
                if Self.compactionsInARow(state.events) >= context.limit {
                    if !announcing.isEmpty { try await append(session, fence, state, announcing) }
                    return try await finish(session, fence, state, started, .retriesExhausted, after: [Self.compactionLimitReached(context.limit)])
                }
                if let ended = try await compact(session, fence, agent, tools, &compactor, state, started, announcing: announcing) {
                    return ended
                }
                announcing = []
            }
            state.modelRequests += 1
            let startSeq = try await append(session, fence, state, announcing + [.spanModelRequestStart]).lastSeq
            announcing = []
            let startId = SessionLog.eventID(session, seq: startSeq)
            state.openModelRequest = startId
            let conversation = state.conversation
            var request = ModelRequest(
                model: agent.model, system: agent.system, messages: conversation.messages, tools: tools, maxTokens: agent.maxTokens)
            request.session = session
            let customNames = Set(agent.customTools.map(\.name))
            var response: ModelResponse?
            var rescheduled = false
            var firstToken = state.modelRequests == 1
            let requestStarted = ContinuousClock.now
            var attemptStarted = requestStarted
            var awaitingFirstToken = true
            // Where the response's agent.message will land: after the request's start, and after
            // agent.thinking if the model thought first (its deltas come before any text).
            var thought = false
            do {
                for try await event in model.stream(request) {
                    switch event {
                    case .textDelta, .thinkingDelta, .toolUseStarted:
                        // Time to first token of the attempt that answered, not of the retries.
                        if awaitingFirstToken {
                            awaitingFirstToken = false
                            DroverMetrics.modelTimeToFirstToken.record(since: attemptStarted)
                        }
                    default:
                        break
                    }
                    switch event {
                    case .sent:
                        if state.takeAwaitedHands() {
                            Task { [hand] in await hand.prepare(session: session, environment: state.environment) }
                        }
                    case .thinkingDelta:
                        thought = true
                    case .textDelta(let index, let text):
                        if firstToken {
                            firstToken = false
                            onFirstToken?(session)
                        }
                        sink.send(.text(index: index, text: text, eventId: SessionLog.eventID(session, seq: state.lastSeq + (thought ? 2 : 1))))
                    case .retrying(let attempt, let delay, let reason):
                        DroverMetrics.modelRetries.increment()
                        attemptStarted = ContinuousClock.now + delay
                        awaitingFirstToken = true
                        logger.info("model request retrying", metadata: ["session": "\(session)", "attempt": "\(attempt)", "reason": "\(reason)"])
                        sink.send(.reset)
                        thought = false
                        try await append(session, fence, state, [.sessionStatusRescheduled])
                        rescheduled = true
                        _ = delay
                    case .started where rescheduled:
                        rescheduled = false
                        try await append(session, fence, state, [.sessionStatusRunning])
                    case .completed(let message):
                        response = message
                    default:
                        break
                    }
                }
            } catch let error as ModelError {
                // Refused as too long: the estimate or the configured window was wrong. The
                // model's own numbers replace them, and the request goes again once compacted.
                if context.enabled,
                    try await closeRefused(session, fence, state, startId, error, bytes: compactor.fixedBytes + conversation.size, &compactor)
                {
                    continue
                }
                return try await failModelRequest(session, fence, state, started, startId, error)
            }
            guard let response else { throw ModelError.malformedStream("the stream ended without a message") }
            DroverMetrics.modelRequestDuration.record(since: requestStarted)
            Self.countTokens(response.usage, model: agent.model)
            state.scale.learn(bytes: compactor.fixedBytes + conversation.size, usage: response.usage)
            if rescheduled {
                try await append(session, fence, state, [.sessionStatusRunning])
            }

            var events: [SessionEventPayload] = []
            if response.content.contains(where: { if case .thinking = $0 { return true } else { return false } }) {
                events.append(.agentThinking)
            }
            let texts: [ContentBlock] = response.content.compactMap {
                if case .text(let text) = $0, !text.isEmpty { return .text(text) }
                return nil
            }
            if !texts.isEmpty { events.append(.agentMessage(AgentMessage(content: texts))) }
            let toolUses: [(name: String, input: JSONValue)] = response.content.compactMap {
                if case .toolUse(_, let name, let input) = $0 { return (name, input) }
                return nil
            }
            let firstToolIndex = events.count
            for use in toolUses {
                if Self.isThreadTool(use.name, agent) {
                    // The brain's own tools: never a confirmation, never the hands.
                    events.append(
                        .agentToolUse(
                            AgentToolUse(name: use.name, input: use.input.objectValue ?? [:], evaluatedPermission: .allow, evaluation: .alwaysAllow)))
                    continue
                }
                events.append(Self.toolUse(use.name, input: use.input.objectValue ?? [:], custom: customNames.contains(use.name), hands: hands))
            }
            events.append(.spanModelRequestEnd(SpanModelRequestEnd(modelRequestStartId: startId, modelUsage: response.usage, isError: false)))
            if toolUses.isEmpty, agent.roster != nil {
                // A coordinator's turn ends only when no thread owes it a reply and nothing
                // arrived while the model wrote: else it carries on, or waits without a worker.
                try await state.refresh(log, session)
                let arrived = state.events.filter { $0.seq > startSeq && $0.kind?.isTurnInput == true }
                let waits = !ThreadLedger(state.events).awaited.isEmpty && arrived.allSatisfy { $0.kind == .agentThreadMessageReceived }
                if waits || !arrived.isEmpty {
                    try await append(session, fence, state, events)
                    state.openModelRequest = nil
                    if waits { return TurnOutcome(.awaitingThreads, modelRequests: state.modelRequests) }
                    continue
                }
            }
            guard !toolUses.isEmpty else {
                // The answer and the turn's end in one append: one round trip, and no log that
                // holds the answer but not the idle.
                let outcome = try await finish(
                    session, fence, state, started, response.stopReason == "refusal" ? .refusal : .endTurn, after: events, adding: response.usage)
                state.openModelRequest = nil
                return outcome
            }
            let appended = try await append(session, fence, state, events)
            state.openModelRequest = nil
            var waitingOnClient: [String] = []
            var waitingOnHands = false
            for (offset, use) in toolUses.enumerated() {
                let useId = SessionLog.eventID(session, seq: appended.firstSeq + Int64(firstToolIndex + offset))
                if Self.isThreadTool(use.name, agent) {
                    try await runThreadCall(useId, use.name, use.input.objectValue ?? [:], session, fence, agent, state)
                    continue
                }
                let route = hands.route(use.name)
                if customNames.contains(use.name) || hands.asks(route, name: use.name) {
                    waitingOnClient.append(useId)
                    continue
                }
                if !hands.isEnabled(route, name: use.name) {
                    try await append(
                        session, fence, state,
                        [Self.toolResult(useId: useId, mcp: route.isMCP, .text("the tool \(use.name) is not enabled for this agent", isError: true))])
                    continue
                }
                if !route.isMCP, state.environment.runsRemotely(use.name) {
                    waitingOnHands = true
                    continue
                }
                let result = try await execute(
                    hands, use.name, use.input, session: session, fence: fence, timeout: agent.toolTimeoutSeconds, environment: state.environment)
                try await append(session, fence, state, [Self.toolResult(useId: useId, mcp: route.isMCP, result)])
            }
            if !waitingOnClient.isEmpty {
                return try await finish(session, fence, state, started, .requiresAction(eventIds: waitingOnClient))
            }
            if waitingOnHands, let remote = state.environment.selfHostedEnvironment {
                try await work.ensure(environment: remote, session: session)
                return TurnOutcome(.awaitingHands, modelRequests: state.modelRequests)
            }
        }
    }

    /// Ends the turn after a model request failed for good.
    private func failModelRequest(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ started: ContinuousClock.Instant, _ startId: String, _ error: ModelError
    ) async throws -> TurnOutcome {
        DroverMetrics.modelErrors.increment()
        let exhausted: Bool
        if case .retriesExhausted = error { exhausted = true } else { exhausted = false }
        state.openModelRequest = nil
        let failure = SessionErrorObject(
            type: error.description.contains("overloaded") ? .modelOverloadedError : .modelRequestFailedError, message: error.description,
            retryStatus: exhausted ? .exhausted : .terminal)
        try await append(session, fence, state, [Self.failedModelRequestEnd(start: startId), .sessionError(SessionErrorEvent(error: failure))])
        return try await finish(session, fence, state, started, .retriesExhausted)
    }

    // MARK: Compaction

    /// Asks the model to summarise the earlier part of the context, then appends its summary as
    /// `agent.thread_context_compacted` with the request's end, in one append: a crash leaves the
    /// log as it was (the request's start is closed as cut off, as any other's) or with one whole
    /// compaction. Returns the turn's outcome when it ended instead.
    private func compact(
        _ session: SessionID, _ fence: SessionFence, _ agent: AgentSnapshot, _ tools: [ModelToolDefinition],
        _ compactor: inout ContextCompactor, _ state: TurnState, _ started: ContinuousClock.Instant, announcing: [SessionEventPayload],
        refusals: Int = 0
    ) async throws -> TurnOutcome? {
        let plan = compactor.plan(state.conversation, scale: state.scale)
        let startSeq = try await append(session, fence, state, announcing + [.spanModelRequestStart]).lastSeq
        let startId = SessionLog.eventID(session, seq: startSeq)
        state.openModelRequest = startId
        // The same tools as every request: the model API wants them wherever tool calls are in
        // the messages, and the prompt asks for none.
        var request = ModelRequest(model: agent.model, system: agent.system, messages: plan.messages, tools: tools, maxTokens: agent.maxTokens)
        request.session = session
        let requestStarted = ContinuousClock.now
        var response: ModelResponse?
        var rescheduled = false
        do {
            for try await event in model.stream(request) {
                switch event {
                case .retrying(let attempt, _, let reason):
                    DroverMetrics.modelRetries.increment()
                    logger.info("compaction request retrying", metadata: ["session": "\(session)", "attempt": "\(attempt)", "reason": "\(reason)"])
                    try await append(session, fence, state, [.sessionStatusRescheduled])
                    rescheduled = true
                case .started where rescheduled:
                    rescheduled = false
                    try await append(session, fence, state, [.sessionStatusRunning])
                case .completed(let message):
                    response = message
                default:
                    break
                }
            }
        } catch let error as ModelError {
            // The summary request itself refused as too long: once more, cut to the model's numbers.
            if refusals == 0, try await closeRefused(session, fence, state, startId, error, bytes: compactor.fixedBytes + plan.bytes, &compactor) {
                return try await compact(session, fence, agent, tools, &compactor, state, started, announcing: [], refusals: 1)
            }
            return try await failModelRequest(session, fence, state, started, startId, error)
        }
        guard let response else { throw ModelError.malformedStream("the stream ended without a message") }
        DroverMetrics.modelRequestDuration.record(since: requestStarted)
        Self.countTokens(response.usage, model: agent.model)
        state.scale.learn(bytes: compactor.fixedBytes + plan.bytes, usage: response.usage)
        let summary = response.content.compactMap { block -> String? in
            if case .text(let text) = block { return text }
            return nil
        }.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !summary.isEmpty else {
            // Nothing to carry on from: the turn ends, and the context stays as it was.
            state.openModelRequest = nil
            let failure = SessionErrorObject(
                type: .modelRequestFailedError, message: "asked to summarise the context, which is nearly full, the model wrote no text",
                retryStatus: .exhausted)
            let end = SpanModelRequestEnd(modelRequestStartId: startId, modelUsage: response.usage, isError: true)
            try await append(session, fence, state, [.spanModelRequestEnd(end), .sessionError(SessionErrorEvent(error: failure))])
            return try await finish(session, fence, state, started, .retriesExhausted)
        }
        let end = SpanModelRequestEnd(modelRequestStartId: startId, modelUsage: response.usage, isError: false)
        let compacted = AgentThreadContextCompacted(summary: summary, firstKeptEventId: plan.firstKeptEventId)
        try await append(session, fence, state, [.spanModelRequestEnd(end), .agentThreadContextCompacted(compacted)])
        state.openModelRequest = nil
        DroverMetrics.compactions.increment()
        logger.info(
            "context compacted",
            metadata: ["session": "\(session)", "summary_bytes": "\(summary.utf8.count)", "kept_from": "\(plan.firstKeptEventId ?? "none")"])
        return nil
    }

    /// When the model refused the request of `bytes` bytes as too long: learns its count and
    /// window, and closes the request as failed. False, doing nothing, for any other error.
    private func closeRefused(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ startId: String, _ error: ModelError, bytes: Int,
        _ compactor: inout ContextCompactor
    ) async throws -> Bool {
        var scale = state.scale
        guard compactor.learn(from: error, bytes: bytes, scale: &scale) else { return false }
        state.scale = scale
        state.openModelRequest = nil
        try await append(session, fence, state, [Self.failedModelRequestEnd(start: startId)])
        logger.notice(
            "the model refused a request as too long; compacting to its window",
            metadata: ["session": "\(session)", "window": "\(compactor.window)", "error": "\(error)"])
        return true
    }

    /// Compactions since the model last wrote a message or called a tool, or the user last wrote.
    static func compactionsInARow(_ events: [StoredEvent]) -> Int {
        var count = 0
        for event in events.reversed() {
            switch event.kind {
            case .agentThreadContextCompacted: count += 1
            case .agentMessage, .agentToolUse, .agentMcpToolUse, .agentCustomToolUse, .userMessage: return count
            default: continue
            }
        }
        return count
    }

    static func compactionLimitReached(_ limit: Int) -> SessionEventPayload {
        .sessionError(
            SessionErrorEvent(
                error: SessionErrorObject(
                    type: .compactionLimitReachedError,
                    message:
                        "the context was compacted \(limit) times in a row and still does not fit the model's context window (DROVER_CONTEXT_WINDOW); "
                        + "the turn stops. A shorter message or smaller tool results let the next one through",
                    retryStatus: .exhausted)))
    }

    // MARK: Remote hands

    /// Whether `use` is a call a self-hosted environment's worker runs.
    public static func runsRemotely(_ use: StoredEvent, _ environment: EnvironmentConfig) -> Bool {
        guard use.kind == .agentToolUse, case .agentToolUse(let tool)? = use.payload else { return false }
        return environment.runsRemotely(tool.name)
    }

    /// Calls Drover runs itself that a crash or an interrupt cut off; a worker's are its own to answer.
    static func danglingLocalCalls(_ events: [StoredEvent], _ environment: EnvironmentConfig) -> [StoredEvent] {
        ContextBuilder.danglingToolUses(in: events).filter { !runsRemotely($0, environment) }
    }

    /// The result of a call the user denied.
    static func denial(_ answer: UserToolConfirmation) -> ToolResult {
        .text("the user denied this tool call" + (answer.denyMessage.map { ": \($0)" } ?? ""), isError: true)
    }

    /// The calls a self-hosted worker runs, or may be running, now: open, and not held for a
    /// confirmation. Nil for a session whose hands are Drover's.
    public static func remoteCallsRunning(_ events: [StoredEvent], _ environment: EnvironmentConfig) -> [StoredEvent]? {
        guard environment.selfHostedEnvironment != nil else { return nil }
        let held = Set(ContextBuilder.awaitingConfirmation(in: events).map(\.id))
        return ContextBuilder.openToolUses(in: events).filter { runsRemotely($0, environment) && !held.contains($0.id) }
    }

    /// Closes every open call of the session's worker with an error, each at most once: a result
    /// that the worker sent first wins.
    private func closeRemoteCalls(_ session: SessionID, _ fence: SessionFence, _ state: TurnState, text: String) async throws {
        let open = ContextBuilder.openToolUses(in: state.events).filter { Self.runsRemotely($0, state.environment) }
        for use in open {
            try await appendRemoteResult(session, fence, state, use.id, .text(text, isError: true))
        }
    }

    /// A result for a worker's call, written by Drover: a `user.tool_result`, as the worker's
    /// own would be, so that the SDK's runner counts the call answered and never runs it again.
    private func appendRemoteResult(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ useId: String, _ result: ToolResult
    ) async throws {
        do {
            try await append(session, fence, state, [Self.remoteResult(useId: useId, result)])
        } catch SessionLogError.alreadyAnswered {
            try await state.refresh(log, session)
        }
    }

    public static func remoteResult(useId: String, _ result: ToolResult) -> SessionEventPayload {
        .userToolResult(UserToolResult(toolUseId: useId, content: result.content, isError: result.isError))
    }

    static func countTokens(_ usage: ModelUsage, model: String) {
        for (kind, count) in [
            ("input", usage.inputTokens), ("output", usage.outputTokens), ("cache_read", usage.cacheReadInputTokens),
            ("cache_creation", usage.cacheCreationInputTokens),
        ] where count > 0 {
            DroverMetrics.tokens(model, kind).increment(by: count)
        }
    }

    private func execute(
        _ hands: TurnHands, _ name: String, _ input: JSONValue, session: SessionID, fence: SessionFence, timeout: Double,
        environment: EnvironmentConfig
    ) async throws -> ToolResult {
        let started = ContinuousClock.now
        let result = try await executeUntimed(hands, name, input, session: session, fence: fence, timeout: timeout, environment: environment)
        DroverMetrics.toolCallDuration(name).record(since: started)
        if result.isError { DroverMetrics.toolCallErrors(name).increment() }
        return result
    }

    private func executeUntimed(
        _ hands: TurnHands, _ name: String, _ input: JSONValue, session: SessionID, fence: SessionFence, timeout: Double,
        environment: EnvironmentConfig
    ) async throws -> ToolResult {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let context = ToolContext(session: session, fence: fence, deadline: deadline, environment: environment, mcpHosts: hands.agent.mcpHosts)
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

    /// Ends the turn: the session's cumulative usage, then idle for `reason`. `events` not yet
    /// appended go first, in the same append; `usage` is what they add to the count.
    func finish(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ started: ContinuousClock.Instant, _ reason: StopReason,
        after events: [SessionEventPayload] = [], adding usage: ModelUsage = ModelUsage()
    ) async throws -> TurnOutcome {
        let tokens = Self.cumulativeUsage(state.events) + usage
        var previous: SessionUsageSnapshot?
        if case .sessionUsage(let last)? = state.events.last(where: { $0.kind == .sessionUsage })?.payload { previous = last.usage }
        let active = (previous?.activeSeconds ?? 0) + (ContinuousClock.now - started).seconds
        let snapshot = SessionUsageSnapshot(
            activeSeconds: (active * 1000).rounded() / 1000, cacheReadInputTokens: tokens.cacheReadInputTokens, inputTokens: tokens.inputTokens,
            outputTokens: tokens.outputTokens)
        await hand.turnEnding(session: session)
        // A thread's last word goes to its coordinator: in its own log as sent, in the
        // coordinator's as received, with the idle.
        var reply: [ContentBlock]?
        var sent: [SessionEventPayload] = []
        if let origin = state.origin {
            let content = Self.replyContent(events, state.events, reason)
            reply = content
            sent = [.agentThreadMessageSent(AgentThreadMessageSent(content: content, toSessionThreadId: origin.parentThread, toAgentName: nil))]
        }
        let ended = try await append(
            session, fence, state,
            events + sent + [.sessionUsage(SessionUsage(usage: snapshot)), .sessionStatusIdle(SessionStatusIdle(stopReason: reason))])
        if let origin = state.origin, let threads = state.threads {
            try await threads.reply(from: session, origin: origin, content: reply, stopReason: reason, idleSeq: ended.lastSeq)
        }
        return TurnOutcome(.idle(reason), modelRequests: state.modelRequests)
    }

    @discardableResult
    func append(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ events: [SessionEventPayload]
    ) async throws
        -> AppendResult
    {
        let result = try await log.append(session, events, fence: fence)
        // The log's reply says what it stored: read back only when someone else appended since.
        if !state.extend(with: result.events) { try await state.refresh(log, session) }
        return result
    }

    // MARK: Events

    /// The model asked for a tool: custom tools wait for the client, the others say whether they
    /// run at once or wait for a confirmation.
    static func toolUse(_ name: String, input: [String: JSONValue], custom: Bool, hands: TurnHands) -> SessionEventPayload {
        if custom { return .agentCustomToolUse(AgentCustomToolUse(name: name, input: input)) }
        let route = hands.route(name)
        let asks = hands.asks(route, name: name)
        let permission: EvaluatedPermission = asks ? .ask : .allow
        let evaluation: ToolEvaluation = asks ? .alwaysAsk : .alwaysAllow
        if case .mcp(let server, let tool) = route {
            return .agentMCPToolUse(
                AgentMCPToolUse(mcpServerName: server.name, name: tool, input: input, evaluatedPermission: permission, evaluation: evaluation))
        }
        return .agentToolUse(AgentToolUse(name: name, input: input, evaluatedPermission: permission, evaluation: evaluation))
    }

    /// An error result for a tool use that will never run to its end.
    static func toolResult(for use: StoredEvent, text: String) -> SessionEventPayload {
        toolResult(answering: use, .text(text, isError: true))
    }

    static func toolResult(answering use: StoredEvent, _ result: ToolResult) -> SessionEventPayload {
        toolResult(useId: use.id, mcp: use.kind == .agentMcpToolUse, result)
    }

    static func toolResult(useId: String, mcp: Bool, _ result: ToolResult) -> SessionEventPayload {
        mcp
            ? .agentMCPToolResult(AgentMCPToolResult(mcpToolUseId: useId, content: result.content, isError: result.isError))
            : .agentToolResult(AgentToolResult(toolUseId: useId, content: result.content, isError: result.isError))
    }

    /// Closes a model request that produced nothing: it failed, or a crash or an interrupt cut it off.
    static func failedModelRequestEnd(start: String) -> SessionEventPayload {
        .spanModelRequestEnd(SpanModelRequestEnd(modelRequestStartId: start, modelUsage: ModelUsage(), isError: true))
    }

    static func unreadableAgent(_ error: DecodingError) -> SessionEventPayload {
        let path: String
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
            path = WirePath.field("agent", WirePath.from(context.codingPath))
        @unknown default:
            path = "agent"
        }
        return unreadable("the session's stored agent cannot be read (at \(path)), so no turn runs: \(error.localizedDescription)")
    }

    static func unreadableEnvironment(_ error: any Error) -> SessionEventPayload {
        unreadable("the session's stored environment config cannot be read, so no turn runs: \(error)")
    }

    /// A terminal `session.error` for something the session was created with that cannot be read.
    private static func unreadable(_ message: String) -> SessionEventPayload {
        .sessionError(SessionErrorEvent(error: SessionErrorObject(type: .unknownError, message: message, retryStatus: .terminal)))
    }

    static func mcpConnectionFailed(server: String, message: String) -> SessionEventPayload {
        .sessionError(
            SessionErrorEvent(
                error: SessionErrorObject(
                    type: .mcpConnectionFailedError, message: "cannot reach MCP server \(server): \(message)", retryStatus: .terminal,
                    details: ["mcp_server_name": .string(server)])))
    }

    static func cumulativeUsage(_ events: [StoredEvent]) -> ModelUsage {
        events.reduce(ModelUsage()) { total, event in
            guard event.kind == .spanModelRequestEnd, case .spanModelRequestEnd(let end)? = event.payload else { return total }
            return total + end.modelUsage
        }
    }

    /// True when input arrived after the last idle, or a turn was cut off mid-way.
    static func needsTurn(_ events: [StoredEvent]) -> Bool {
        guard let lastIdle = events.lastIndex(where: { $0.kind == .sessionStatusIdle || $0.kind == .sessionStatusTerminated }) else {
            return events.contains { $0.kind?.isTurnInput == true }
        }
        if events[lastIdle].kind == .sessionStatusTerminated { return false }
        return events[(lastIdle + 1)...].contains { $0.kind?.isTurnInput == true || $0.kind == .sessionStatusRunning }
    }
}

/// The turn's view of the log, kept current after each append.
final class TurnState: @unchecked Sendable {
    private let lock = NSLock()
    private var _events: [StoredEvent]
    private var _conversation = ContextBuilder.Conversation()
    private var _openModelRequest: String?
    private var _modelRequests = 0
    private var _handsAwaited = false

    /// The session's environment `config`, handed to the tools.
    let environment: EnvironmentConfig
    /// Set for a child thread: where its replies go.
    let origin: ThreadOrigin?
    /// Starts threads and carries replies; nil when the turn runs without a queue to do it.
    let threads: ThreadMessenger?

    init(events: [StoredEvent], environment: EnvironmentConfig = .none, origin: ThreadOrigin? = nil, threads: ThreadMessenger? = nil) {
        self.origin = origin
        self.threads = threads
        _events = events
        _conversation.add(contentsOf: events)
        self.environment = environment
    }

    /// The session's hands are to be provisioned lazily, when the first model request is out.
    func awaitHands() { lock.withLock { _handsAwaited = true } }

    /// True once, for the request that provisions the awaited hands.
    func takeAwaitedHands() -> Bool {
        lock.withLock {
            defer { _handsAwaited = false }
            return _handsAwaited
        }
    }

    var events: [StoredEvent] { lock.withLock { _events } }
    /// The model's view of the log, kept current with it.
    var conversation: ContextBuilder.Conversation { lock.withLock { _conversation } }
    private var _scale = TokenScale()
    /// Tokens per byte, as the model counts them.
    var scale: TokenScale {
        get { lock.withLock { _scale } }
        set { lock.withLock { _scale = newValue } }
    }
    var lastSeq: Int64 { lock.withLock { _events.last?.seq ?? 0 } }
    /// Whether the session's latest status is running.
    var showsRunning: Bool { events.last(where: { $0.kind?.isSessionStatus == true })?.kind == .sessionStatusRunning }
    var openModelRequest: String? {
        get { lock.withLock { _openModelRequest } }
        set { lock.withLock { _openModelRequest = newValue } }
    }
    var modelRequests: Int {
        get { lock.withLock { _modelRequests } }
        set { lock.withLock { _modelRequests = newValue } }
    }

    /// Adds `stored` when it follows the last event held; false (nothing added) otherwise.
    func extend(with stored: [StoredEvent]) -> Bool {
        lock.withLock {
            guard let first = stored.first, first.seq == (_events.last?.seq ?? 0) + 1 else { return false }
            _events += stored
            _conversation.add(contentsOf: stored)
            return true
        }
    }

    func refresh(_ log: SessionLog, _ session: SessionID) async throws {
        let newer = try await log.read(session, afterSeq: lastSeq, limit: 10_000)
        lock.withLock {
            _events += newer
            _conversation.add(contentsOf: newer)
        }
    }
}
