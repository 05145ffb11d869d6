import DroverCore
import DroverSessionLog
import DroverTools

/// The parts of a turn that coordinate threads: a coordinator's thread tool calls and its wait
/// for replies, and a child thread's replies.
extension TurnRunner {
    /// Whether `name` is one of a coordinator's thread tools, which the brain runs itself (a
    /// custom tool of the same name is the client's).
    static func isThreadTool(_ name: String, _ agent: AgentSnapshot) -> Bool {
        agent.roster != nil && ThreadTools.names.contains(name) && !agent.customTools.contains { $0.name == name }
    }

    /// Whether `use` is a coordinator's call of a thread tool.
    static func isThreadCall(_ use: StoredEvent, _ agent: AgentSnapshot) -> Bool {
        guard use.kind == .agentToolUse, case .agentToolUse(let tool)? = use.payload else { return false }
        return isThreadTool(tool.name, agent)
    }

    func runThreadCall(_ use: StoredEvent, _ session: SessionID, _ fence: SessionFence, _ agent: AgentSnapshot, _ state: TurnState) async throws {
        guard case .agentToolUse(let tool)? = use.payload else { return }
        try await runThreadCall(use.id, tool.name, tool.input, session, fence, agent, state)
    }

    func runThreadCall(
        _ useId: String, _ name: String, _ input: [String: JSONValue], _ session: SessionID, _ fence: SessionFence, _ agent: AgentSnapshot,
        _ state: TurnState
    ) async throws {
        let events: [SessionEventPayload]
        if let threads = state.threads, let roster = agent.roster {
            events = try await threads.run(name, input: input, useId: useId, session: session, agent: agent, roster: roster, events: state.events)
        } else {
            events = [
                Self.toolResult(
                    useId: useId, mcp: false, .text("threads are started by a worker's turns; this turn has no queue to start one", isError: true))
            ]
        }
        do {
            try await log.append(session, events, fence: fence)
            try await state.refresh(log, session)
        } catch SessionLogError.alreadyAnswered {
            try await state.refresh(log, session)
        }
    }

    /// A coordinator woken while threads still owe it replies, by nothing but replies, waits on
    /// without a model request; an interrupt since its last request ends its turn instead.
    /// Woken by nothing new, it waits only if its model has answered all it saw: a turn a crash
    /// cut off after the thread tools' results goes on, and the model answers them. Nil: the
    /// turn goes on.
    func waitForThreads(
        _ session: SessionID, _ fence: SessionFence, _ state: TurnState, _ started: ContinuousClock.Instant
    ) async throws
        -> TurnOutcome?
    {
        let events = state.events
        let lastRequest = events.last { $0.kind == .spanModelRequestStart }?.seq ?? 0
        let arrived = events.filter { $0.seq > lastRequest && ($0.kind?.isTurnInput == true || $0.kind == .userInterrupt) }
        if arrived.last?.kind == .userInterrupt, state.showsRunning {
            let outcome = try await finish(session, fence, state, started, .endTurn)
            return TurnOutcome(.interrupted, modelRequests: outcome.modelRequests)
        }
        guard !ThreadLedger(events).awaited.isEmpty, arrived.allSatisfy({ $0.kind == .agentThreadMessageReceived }) else { return nil }
        if arrived.isEmpty, state.conversation.messages.last?.role != .assistant { return nil }
        return TurnOutcome(.awaitingThreads, modelRequests: 0)
    }

    /// A child thread's last reply, sent again under the key its first delivery used: a crash
    /// between the thread's idle and the delivery loses nothing, and a second delivery is none.
    func redeliverReply(_ session: SessionID, _ origin: ThreadOrigin, _ state: TurnState) async throws {
        let events = state.events
        guard let threads = state.threads, let idle = events.last(where: { $0.kind == .sessionStatusIdle }),
            case .sessionStatusIdle(let status)? = idle.payload
        else { return }
        let input = events.last { $0.seq < idle.seq && $0.kind?.isTurnInput == true }?.seq ?? 0
        var content: [ContentBlock]?
        if let sent = events.last(where: { $0.seq < idle.seq && $0.seq > input && $0.kind == .agentThreadMessageSent }),
            case .agentThreadMessageSent(let message)? = sent.payload
        {
            content = message.content
        }
        try await threads.reply(from: session, origin: origin, content: content, stopReason: status.stopReason, idleSeq: idle.seq)
    }

    /// What a thread replies when its turn ends for `reason`: its last message of the turn
    /// (`pending` is what goes out with the idle), and why it stopped when that was not its choice.
    static func replyContent(_ pending: [SessionEventPayload], _ events: [StoredEvent], _ reason: StopReason) -> [ContentBlock] {
        var content: [ContentBlock] = []
        for case .agentMessage(let message) in pending { content = message.content }
        if content.isEmpty {
            let input = events.last { $0.kind?.isTurnInput == true }?.seq ?? 0
            if let last = events.last(where: { $0.seq > input && $0.kind == .agentMessage }), case .agentMessage(let message)? = last.payload {
                content = message.content
            }
        }
        if reason.type != "end_turn" {
            content.append(.text("(the thread stopped: \(reason.type))"))
        }
        return content.isEmpty ? [.text("(the thread ended its turn without a message)")] : content
    }
}
