import DroverCore
import DroverFileStore
import DroverSessionLog
import DroverTools
import Foundation

/// The tools a coordinator's model starts and messages threads with. The brain runs them
/// itself: they touch only the session's own logs, never a sandbox.
///
/// Both are safe to run again: a thread is named after the call that started it, and each
/// message is appended under a key made from that call's id, so a call cut off by a crash is run
/// again on resume (instead of closed as interrupted) and starts or sends nothing twice (I2).
public enum ThreadTools {
    public static let create = "create_thread"
    public static let send = "send_to_thread"
    public static let names: Set<String> = [create, send]

    /// Threads one session may start, unless `DROVER_THREAD_LIMIT` says otherwise.
    public static let defaultLimit = 32

    public static func definitions(_ roster: ThreadRoster) -> [ModelToolDefinition] {
        let names = roster.members.map(\.name)
        var agentProperty: [String: JSONValue] = [
            "type": "string",
            "description": .string(
                "The agent to run in the new thread: one of "
                    + roster.members.map { member in member.name + (member.description.map { " (\($0))" } ?? "") }.joined(separator: "; ")),
        ]
        if !names.isEmpty { agentProperty["enum"] = .array(names.map(JSONValue.string)) }
        var properties: [String: JSONValue] = [
            "agent": .object(agentProperty),
            "message": .object(["type": "string", "description": "The task for the thread: it sees nothing of this conversation but this."]),
        ]
        var required: [JSONValue] = ["message"]
        if roster.inlineAgents {
            properties["inline_agent"] = .object([
                "type": "object",
                "description": "Instead of `agent`: an agent defined here, with your model and tools.",
                "properties": .object([
                    "name": .object(["type": "string"]), "system": .object(["type": "string"]),
                    "description": .object(["type": "string"]),
                ]),
                "required": .array(["name", "system"]),
            ])
        } else {
            required.append("agent")
        }
        return [
            ModelToolDefinition(
                name: create,
                description:
                    "Start a session thread: another agent, with its own context, works on `message` in parallel with you. "
                    + "Its reply arrives later as a message from that thread; you are woken when every thread you messaged has replied.",
                inputSchema: .object(["type": "object", "properties": .object(properties), "required": .array(required)])),
            ModelToolDefinition(
                name: send,
                description: "Send a follow-up to a thread you started; it keeps everything from its earlier turns and replies again.",
                inputSchema: .object([
                    "type": "object",
                    "properties": .object([
                        "session_thread_id": .object(["type": "string", "description": "The thread's sthr_ id, from create_thread's result."]),
                        "message": .object(["type": "string"]),
                    ]),
                    "required": .array(["session_thread_id", "message"]),
                ])),
        ]
    }
}

/// A session's child threads as its primary log tells them: which were started, by which agent,
/// and which owe the coordinator a reply.
public struct ThreadLedger: Sendable {
    public struct Thread: Sendable, Equatable {
        public var id: String
        public var agentName: String
        public var lastSent: Int64 = 0
        public var lastReceived: Int64 = 0
        public var terminated = false

        /// A message went to it after its last reply.
        public var owesReply: Bool { !terminated && lastSent > lastReceived }
    }

    public private(set) var threads: [Thread] = []

    public init(_ events: [StoredEvent]) {
        var index: [String: Int] = [:]
        for event in events {
            switch event.kind {
            case .sessionThreadCreated, .agentThreadMessageSent, .agentThreadMessageReceived, .sessionThreadStatusTerminated: break
            default: continue
            }
            switch event.payload {
            case .sessionThreadCreated(let created)?:
                if index[created.sessionThreadId] == nil {
                    index[created.sessionThreadId] = threads.count
                    threads.append(Thread(id: created.sessionThreadId, agentName: created.agentName))
                }
            case .agentThreadMessageSent(let sent)?:
                if let at = index[sent.toSessionThreadId] { threads[at].lastSent = event.seq }
            case .agentThreadMessageReceived(let received)?:
                if let at = index[received.fromSessionThreadId] { threads[at].lastReceived = event.seq }
            case .sessionThreadStatusTerminated(let status)?:
                if let at = index[status.sessionThreadId] { threads[at].terminated = true }
            default:
                continue
            }
        }
    }

    public func thread(_ id: String) -> Thread? {
        threads.first { $0.id == id }
    }

    /// Threads that owe a reply: while any does, the coordinator waits without a turn.
    public var awaited: [Thread] { threads.filter(\.owesReply) }
}

/// Starts threads and carries messages between a session's threads: the log of each is its own,
/// fenced as a session's is, and its turns are claimed from the same queue as any other.
public struct ThreadMessenger: Sendable {
    public let inbox: SessionInbox
    public let limit: Int

    public init(inbox: SessionInbox, limit: Int = ThreadMessenger.limitFromEnvironment()) {
        self.inbox = inbox
        self.limit = limit
    }

    public static func limitFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        guard let raw = environment["DROVER_THREAD_LIMIT"], let value = Int(raw), (1...1000).contains(value) else {
            return ThreadTools.defaultLimit
        }
        return value
    }

    var log: SessionLog { inbox.log }

    /// Runs a coordinator's thread tool call `useId` of `session`: what to append to the
    /// session's log, the tool's result last.
    func run(
        _ name: String, input: [String: JSONValue], useId: String, session: SessionID, agent: AgentSnapshot, roster: ThreadRoster,
        events: [StoredEvent]
    ) async throws -> [SessionEventPayload] {
        let ledger = ThreadLedger(events)
        let result: Result<[SessionEventPayload], ThreadToolError>
        switch name {
        case ThreadTools.create:
            result = await create(input: input, useId: useId, session: session, agent: agent, roster: roster, ledger: ledger)
        case ThreadTools.send:
            result = await sendTo(input: input, useId: useId, session: session, ledger: ledger)
        default:
            result = .failure(ThreadToolError("\(name) is not a thread tool"))
        }
        switch result {
        case .success(let events): return events
        case .failure(let error): return [TurnRunner.toolResult(useId: useId, mcp: false, .text(error.message, isError: true))]
        }
    }

    private func create(
        input: [String: JSONValue], useId: String, session: SessionID, agent: AgentSnapshot, roster: ThreadRoster, ledger: ThreadLedger
    ) async -> Result<[SessionEventPayload], ThreadToolError> {
        guard let message = input["message"]?.stringValue, !message.isEmpty else {
            return .failure(ThreadToolError("message: give the thread its task"))
        }
        guard let thread = ThreadIDs.child(startedBy: useId) else { return .failure(ThreadToolError("this call's id names no thread")) }
        let member: ThreadRoster.Member
        if let named = input["agent"]?.stringValue {
            guard let found = roster.member(named: named) else {
                return .failure(
                    ThreadToolError("agent: no agent \(named) in the roster; use one of \(roster.members.map(\.name).joined(separator: ", "))"))
            }
            member = found
        } else if roster.inlineAgents, let inline = input["inline_agent"]?.objectValue {
            guard let name = inline["name"]?.stringValue, !name.isEmpty, let system = inline["system"]?.stringValue else {
                return .failure(ThreadToolError("inline_agent: give it a name and a system prompt"))
            }
            member = Self.inlineMember(name: name, system: system, description: inline["description"]?.stringValue, coordinator: agent)
        } else {
            return .failure(ThreadToolError("agent: name one of \(roster.members.map(\.name).joined(separator: ", "))"))
        }
        if ledger.thread(thread.rawValue) == nil, ledger.threads.count >= limit {
            return .failure(
                ThreadToolError(
                    "thread_limit_error: this session has started \(ledger.threads.count) threads, its limit (DROVER_THREAD_LIMIT); "
                        + "send follow-ups to the threads it has with \(ThreadTools.send)"))
        }
        var snapshot = member.snapshot
        snapshot.thread = ThreadOrigin(
            session: session, parentThread: ThreadIDs.primary(of: session), agentName: member.name, resource: member.resource)
        snapshot.roster = nil
        do {
            let environment = try await log.environmentJSON(session)
            try await log.create(thread, agentJSON: snapshot.json, environmentJSON: environment)
            // The thread's workspace starts with what the session's started with: its file
            // resources, a job item's files. (Each thread has a sandbox of its own.)
            let files = SessionFiles(store: FileStore(redis: log.redis))
            try await files.setSeed(thread, try await files.seed(session))
            // Its tokens count towards whatever started the session (`drover report usage`).
            try await log.database?.inheritSessionOrigin(thread.rawValue, from: session.rawValue)
            try await deliver(message, to: thread, useId: useId, session: session)
        } catch {
            return .failure(ThreadToolError("the thread could not be started: \(error)"))
        }
        return .success([
            .sessionThreadCreated(SessionThreadCreated(sessionThreadId: thread.rawValue, agentName: member.name)),
            .agentThreadMessageSent(AgentThreadMessageSent(content: [.text(message)], toSessionThreadId: thread.rawValue, toAgentName: member.name)),
            .sessionThreadStatusRunning(SessionThreadStatus(sessionThreadId: thread.rawValue, agentName: member.name)),
            TurnRunner.toolResult(
                useId: useId, mcp: false,
                .text("Started thread \(thread.rawValue) running \(member.name). Its reply will arrive as a message from that thread.")),
        ])
    }

    private func sendTo(
        input: [String: JSONValue], useId: String, session: SessionID, ledger: ThreadLedger
    ) async -> Result<
        [SessionEventPayload], ThreadToolError
    > {
        guard let message = input["message"]?.stringValue, !message.isEmpty else {
            return .failure(ThreadToolError("message: give the thread a message"))
        }
        guard let id = input["session_thread_id"]?.stringValue, let known = ledger.thread(id), let thread = try? SessionID(id) else {
            return .failure(
                ThreadToolError(
                    "session_thread_id: not a thread of this session; its threads are "
                        + (ledger.threads.isEmpty
                            ? "none yet (start one with \(ThreadTools.create))" : ledger.threads.map(\.id).joined(separator: ", "))))
        }
        guard !known.terminated else { return .failure(ThreadToolError("thread \(id) was archived or terminated and takes no messages")) }
        do {
            try await deliver(message, to: thread, useId: useId, session: session)
        } catch SessionLogError.sessionTerminated {
            return .failure(ThreadToolError("thread \(id) was archived or terminated and takes no messages"))
        } catch {
            return .failure(ThreadToolError("the message could not be delivered: \(error)"))
        }
        return .success([
            .agentThreadMessageSent(AgentThreadMessageSent(content: [.text(message)], toSessionThreadId: id, toAgentName: known.agentName)),
            .sessionThreadStatusRunning(SessionThreadStatus(sessionThreadId: id, agentName: known.agentName)),
            TurnRunner.toolResult(useId: useId, mcp: false, .text("Sent to thread \(id); its reply will arrive as a message from that thread.")),
        ])
    }

    /// The coordinator's message into the thread's log, once per call, and a turn for it.
    private func deliver(_ message: String, to thread: SessionID, useId: String, session: SessionID) async throws {
        let received = AgentThreadMessageReceived(content: [.text(message)], fromSessionThreadId: ThreadIDs.primary(of: session), fromAgentName: nil)
        try await inbox.send([.agentThreadMessageReceived(received)], to: thread, clientKey: "thread-message:\(useId)", turnID: "task_\(useId)")
    }

    /// A thread's reply into its coordinator's log, with the thread's idle cross-posted, once per
    /// idle (`idleSeq`), and a turn for the coordinator when there is a reply to read.
    func reply(from thread: SessionID, origin: ThreadOrigin, content: [ContentBlock]?, stopReason: StopReason, idleSeq: Int64) async throws {
        var events: [SessionEventPayload] = []
        if let content {
            events.append(
                .agentThreadMessageReceived(
                    AgentThreadMessageReceived(content: content, fromSessionThreadId: thread.rawValue, fromAgentName: origin.agentName)))
        }
        events.append(
            .sessionThreadStatusIdle(SessionThreadStatus(sessionThreadId: thread.rawValue, agentName: origin.agentName, stopReason: stopReason)))
        let key = "thread-reply:\(thread.rawValue):\(idleSeq)"
        do {
            try await inbox.send(events, to: origin.session, clientKey: key, turnID: "task_\(thread.idPart)_\(idleSeq)")
        } catch SessionLogError.sessionTerminated {
            // The session ended; nobody waits for the reply.
        }
    }

    /// An agent the coordinator's model defined: its model and built-in tools, its own prompt.
    static func inlineMember(name: String, system: String, description: String?, coordinator: AgentSnapshot) -> ThreadRoster.Member {
        var snapshot = coordinator
        snapshot.system = system
        snapshot.roster = nil
        snapshot.thread = nil
        snapshot.customTools = []
        let resource = ThreadRoster.shown([
            "name": .string(name), "description": description.map(JSONValue.string) ?? .null, "system": .string(system),
            "model": .string(coordinator.model),
        ])
        return ThreadRoster.Member(name: name, description: description, snapshot: snapshot, resource: resource)
    }
}

struct ThreadToolError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
