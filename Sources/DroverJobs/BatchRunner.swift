import DroverBrain
import DroverCore
import DroverDatabase
import DroverHands
import DroverQueue
import DroverSessionLog
import Foundation

/// Everything one run of a job needs, resolved: the items, and the agent each session snapshots.
public struct BatchPlan: Sendable {
    public let spec: JobSpec
    public let items: [JobItem]
    /// The agent each session is created with, decoded once when the run is planned.
    public let agent: AgentSnapshot
    public let batchId: String
    /// The environment `config` each session's sandbox gets, or nil for the default.
    public var environment: JSONValue?
    /// Shown in the report: which model produced the messages (`scripted (playbook)` offline).
    public let modelLabel: String

    public init(spec: JobSpec, items: [JobItem], agent: AgentSnapshot, batchId: String, modelLabel: String) {
        self.spec = spec
        self.items = items
        self.agent = agent
        self.batchId = batchId
        self.modelLabel = modelLabel
    }

    /// One batch per job name: a rerun of the job continues it.
    public static func batchId(forJob name: String) -> String {
        "batch_" + name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }
}

/// Fans a job's items out as sessions through the task queue, at most `concurrency` at a time,
/// and records each item's outcome as soon as it is known, so a killed run loses nothing.
///
/// Items are keyed by content (`JobItem.key`): an item a previous run finished is reported, not
/// redone. An item that was running when its run died is checked: if its session finished, the
/// result is taken from the log; otherwise the session is ended and the item starts afresh.
public final class BatchRunner: Sendable {
    public struct Options: Sendable {
        public var queue: QueueName = TurnQueue.defaultName
        /// `<hands root>`: workspaces are `<root>/workspaces/SESSION`.
        public var handsRoot: URL
        public var workspaceId: String?
        /// Also redo items that finished as failed or timed out.
        public var retryFailed = false

        public init(handsRoot: URL) { self.handsRoot = handsRoot }
    }

    public enum Progress: Sendable {
        case planned(total: Int, finishedEarlier: Int, toRun: Int)
        case itemStarted(itemId: String, attempt: Int, session: String)
        case itemFinished(ItemOutcome)
        case budgetSpent(String)
    }

    public let log: SessionLog
    public let queue: TaskQueue
    public let database: MirrorDatabase
    public let options: Options
    private let progress: @Sendable (Progress) -> Void
    private let notifier: SessionSettleNotifier

    public init(log: SessionLog, queue: TaskQueue, database: MirrorDatabase, options: Options, progress: @escaping @Sendable (Progress) -> Void) {
        self.log = log
        self.queue = queue
        self.database = database
        self.options = options
        self.progress = progress
        notifier = SessionSettleNotifier(log: log)
    }

    var layout: HandsLayout { HandsLayout(root: options.handsRoot) }

    public func run(_ plan: BatchPlan) async throws -> [ItemOutcome] {
        let earlier = Dictionary(
            try await database.batchItems(plan.batchId).compactMap { row in row.result.flatMap(ItemOutcome.decode).map { (row.itemKey, $0) } },
            uniquingKeysWith: { first, _ in first })
        try await saveBatch(plan, status: "running", outcomes: [])

        var outcomes: [ItemOutcome?] = Array(repeating: nil, count: plan.items.count)
        var toRun: [(Int, JobItem, ItemOutcome?)] = []
        for (position, item) in plan.items.enumerated() {
            if var done = earlier[item.key], done.status.isFinished, !(options.retryFailed && done.status != .succeeded) {
                done.fromEarlierRun = true
                done.position = position
                done.itemId = item.id
                outcomes[position] = done
            } else {
                toRun.append((position, item, earlier[item.key]))
            }
        }
        progress(.planned(total: plan.items.count, finishedEarlier: plan.items.count - toRun.count, toRun: toRun.count))

        let ledger = BudgetLedger(budget: plan.spec.budget, spent: outcomes.compactMap { $0 })
        try await withThrowingTaskGroup(of: (Int, ItemOutcome).self) { group in
            var next = toRun.makeIterator()
            var running = 0
            func startNext() async -> Bool {
                guard let (position, item, previous) = next.next() else { return false }
                if let reason = await ledger.exhausted() {
                    var skipped = previous ?? ItemOutcome(itemId: item.id, key: item.key, position: position, status: .skipped)
                    skipped.status = .skipped
                    skipped.error = "not started: \(reason)"
                    outcomes[position] = skipped
                    try? await save(plan, skipped)
                    progress(.itemFinished(skipped))
                    return true
                }
                running += 1
                group.addTask { (position, await self.runItem(item, position: position, previous: previous, plan: plan, ledger: ledger)) }
                return true
            }
            while running < plan.spec.concurrency, await startNext() {}
            while let (position, outcome) = try await group.next() {
                running -= 1
                outcomes[position] = outcome
                progress(.itemFinished(outcome))
                while running < plan.spec.concurrency, await startNext() {}
            }
        }
        if let reason = await ledger.exhausted() { progress(.budgetSpent(reason)) }
        let final = outcomes.compactMap { $0 }
        try await saveBatch(plan, status: final.allSatisfy { $0.status.isFinished } ? "completed" : "incomplete", outcomes: final)
        return final
    }

    // MARK: One item

    private func runItem(_ item: JobItem, position: Int, previous: ItemOutcome?, plan: BatchPlan, ledger: BudgetLedger) async -> ItemOutcome {
        var outcome = previous ?? ItemOutcome(itemId: item.id, key: item.key, position: position, status: .pending)
        outcome.itemId = item.id
        outcome.position = position
        outcome.fromEarlierRun = false
        outcome.error = nil
        let started = ContinuousClock.now
        outcome.startedAt = Timestamp.now()

        if previous?.status == .running, let session = previous?.sessionId, let id = try? SessionID(session) {
            if let finished = await adopt(id, item: item, outcome: outcome, plan: plan, ledger: ledger) {
                return await finish(finished, started: started, plan: plan)
            }
        }
        while outcome.attempts < plan.spec.retries + 1 {
            outcome.attempts += 1
            do {
                let (ending, events, session) = try await attempt(item, outcome: &outcome, plan: plan)
                let reading = TurnReading(events)
                await ledger.add(tokens: reading.inputTokens + reading.outputTokens, seconds: reading.activeSeconds)
                outcome.inputTokens += reading.inputTokens
                outcome.outputTokens += reading.outputTokens
                outcome.activeSeconds += reading.activeSeconds
                outcome.finalMessage = reading.finalMessage.map { String($0.prefix(4000)) }
                switch ending {
                case .timedOut:
                    outcome.status = .timedOut
                    outcome.error = "no result after \(Self.seconds(plan.spec.timeoutSeconds)) (timeout_seconds); the session was interrupted"
                    await end(session)
                    return await finish(outcome, started: started, plan: plan)
                case .idle(.endTurn):
                    if await accept(&outcome, item: item, session: session, plan: plan) {
                        return await finish(outcome, started: started, plan: plan)
                    }
                case .idle(let stopReason):
                    outcome.error = "the turn ended with stop_reason \(stopReason.type)" + (reading.lastError.map { ": \($0)" } ?? "")
                    if case .requiresAction = stopReason { await end(session) }
                case .terminated:
                    outcome.error = "the session was terminated" + (reading.lastError.map { ": \($0)" } ?? "")
                }
            } catch {
                outcome.error = "\(error)"
            }
            outcome.status = .failed
        }
        return await finish(outcome, started: started, plan: plan)
    }

    /// Creates the session, seeds its workspace, sends the prompt and waits for the turn.
    private func attempt(_ item: JobItem, outcome: inout ItemOutcome, plan: BatchPlan) async throws -> (TurnWatcher.Ending, [StoredEvent], SessionID)
    {
        let session = SessionID.make()
        try WorkspaceFiles.seed(layout.staging(session.rawValue), with: item.files)
        try await log.create(session, agent: plan.agent, environment: plan.environment)
        try await database.saveSessionOrigin(session: session.rawValue, kind: "batch", originId: plan.batchId, workspaceId: options.workspaceId)
        outcome.sessions.append(session.rawValue)
        outcome.status = .running
        try await save(plan, outcome)
        progress(.itemStarted(itemId: item.id, attempt: outcome.attempts, session: session.rawValue))
        let message = SessionEventPayload.userMessage(UserMessage(text: item.prompt))
        let appended = try await SessionInbox(log: log, queue: queue, turnQueue: options.queue)
            .send([message], to: session, clientKey: "batch-\(plan.batchId)-\(item.key.prefix(16))-\(outcome.attempts)").appended
        let deadline = ContinuousClock.now + .seconds(plan.spec.timeoutSeconds)
        let (ending, events) = try await TurnWatcher(log: log, notifier: notifier).wait(session, afterSeq: appended.lastSeq, deadline: deadline)
        return (ending, events, session)
    }

    /// Output extraction and collection; false (with the error set) when the output is unusable.
    private func accept(_ outcome: inout ItemOutcome, item: JobItem, session: SessionID, plan: BatchPlan) async -> Bool {
        do {
            // The sandbox may have been evicted (its volume unmounted) since the turn ended.
            return try await layout.withWorkspace(session.rawValue) { workspace in
                Self.accept(&outcome, item: item, plan: plan, workspace: workspace)
            }
        } catch {
            outcome.error = "reading the session's workspace: \(error)"
            return false
        }
    }

    private static func accept(_ outcome: inout ItemOutcome, item: JobItem, plan: BatchPlan, workspace: URL) -> Bool {
        switch OutputExtractor.extract(plan.spec.output, finalMessage: outcome.finalMessage, workspace: workspace) {
        case .failure(let failure):
            outcome.error = failure.description
            return false
        case .success(let columns):
            outcome.columns = columns
        }
        var missing: [String] = []
        for copy in plan.spec.collect {
            do {
                let from = try PromptTemplate.render(copy.from, fields: item.fields)
                let to = try copy.to.map { try PromptTemplate.render($0, fields: item.fields) } ?? "files/\(item.id)/\(from)"
                if try !WorkspaceFiles.collect(from: workspace, path: from, to: plan.spec.reportDirectory, as: to) { missing.append(from) }
            } catch {
                outcome.error = "collect: \(error)"
                return false
            }
        }
        if !missing.isEmpty {
            outcome.error = "the agent did not write \(missing.joined(separator: ", "))"
            return false
        }
        outcome.status = .succeeded
        return true
    }

    /// A session left running by a run that died: take its result if its turn finished.
    private func adopt(_ session: SessionID, item: JobItem, outcome: ItemOutcome, plan: BatchPlan, ledger: BudgetLedger) async -> ItemOutcome? {
        guard let events = try? await log.read(session, afterSeq: 0, limit: 10_000),
            let message = events.first(where: { $0.kind == .userMessage })
        else { return nil }
        let after = events.filter { $0.seq > message.seq }
        guard case .sessionStatusIdle(let idle)? = after.last(where: { $0.kind == .sessionStatusIdle })?.payload, idle.stopReason == .endTurn
        else {
            // Its run died: no worker is watching this turn, so there is nothing to wait for.
            await end(session, graceful: false)
            return nil
        }
        var adopted = outcome
        let reading = TurnReading(after)
        await ledger.add(tokens: reading.inputTokens + reading.outputTokens, seconds: reading.activeSeconds)
        adopted.inputTokens += reading.inputTokens
        adopted.outputTokens += reading.outputTokens
        adopted.activeSeconds += reading.activeSeconds
        adopted.finalMessage = reading.finalMessage.map { String($0.prefix(4000)) }
        return await accept(&adopted, item: item, session: session, plan: plan) ? adopted : nil
    }

    /// Stops a session's work for good: interrupt the turn, give it a moment to wind down, then
    /// terminate the session so that a redelivered turn task finds nothing to do.
    private func end(_ session: SessionID, graceful: Bool = true) async {
        guard let meta = try? await log.meta(session), meta.status != "terminated" else { return }
        if graceful && (meta.status == "running" || meta.status == "rescheduling") {
            _ = try? await log.append(session, [.userInterrupt(UserInterrupt())])
            _ = try? await TurnWatcher(log: log).wait(session, afterSeq: meta.lastSeq, deadline: .now + .seconds(5))
        }
        _ = try? await log.append(session, [.sessionStatusTerminated])
    }

    private func finish(_ outcome: ItemOutcome, started: ContinuousClock.Instant, plan: BatchPlan) async -> ItemOutcome {
        var outcome = outcome
        if outcome.status == .running || outcome.status == .pending { outcome.status = .failed }
        outcome.finishedAt = Timestamp.now()
        outcome.durationSeconds = ((ContinuousClock.now - started).seconds * 1000).rounded() / 1000
        try? await save(plan, outcome)
        return outcome
    }

    private func save(_ plan: BatchPlan, _ outcome: ItemOutcome) async throws {
        try await database.saveBatchItem(
            MirrorDatabase.BatchItemRow(
                batchId: plan.batchId, itemKey: outcome.key, itemId: outcome.itemId, position: outcome.position,
                sessionId: outcome.sessionId, status: outcome.status.rawValue, result: outcome.json))
    }

    private func saveBatch(_ plan: BatchPlan, status: String, outcomes: [ItemOutcome]) async throws {
        var tally: [String: Int] = [:]
        for outcome in outcomes { tally[outcome.status.rawValue, default: 0] += 1 }
        let counts = tally.mapValues { JSONValue.number(Double($0)) }
        let resource = JSONValue.object([
            "id": .string(plan.batchId), "type": .string("batch"), "name": .string(plan.spec.name),
            "job_file": .string(plan.spec.file.path), "status": .string(status), "items": .number(Double(plan.items.count)),
            "counts": .object(counts), "model": .string(plan.modelLabel),
            "report_dir": .string(plan.spec.reportDirectory.path),
        ])
        try await database.saveBatch(
            id: plan.batchId, name: plan.spec.name, jobFile: plan.spec.file.path, status: status, resource: resource.compactJSON)
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}

/// Tokens and running time spent by the batch so far, against its budget.
actor BudgetLedger {
    let budget: JobSpec.Budget
    private var tokens = 0
    private var seconds = 0.0

    init(budget: JobSpec.Budget, spent: [ItemOutcome]) {
        self.budget = budget
        tokens = spent.reduce(0) { $0 + $1.inputTokens + $1.outputTokens }
        seconds = spent.reduce(0) { $0 + $1.activeSeconds }
    }

    func add(tokens: Int, seconds: Double) {
        self.tokens += tokens
        self.seconds += seconds
    }

    func exhausted() -> String? {
        if let limit = budget.maxTokens, tokens >= limit { return "the budget of \(limit) tokens is spent (\(tokens) used)" }
        if let limit = budget.maxActiveSeconds, seconds >= limit { return "the budget of \(Int(limit)) active seconds is spent" }
        return nil
    }
}
