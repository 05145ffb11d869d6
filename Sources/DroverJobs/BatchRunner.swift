import DroverBrain
import DroverCore
import DroverDatabase
import DroverFileStore
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
    /// `agent` as stored in each session's log, encoded once for all of them.
    let agentJSON: String
    public let batchId: String
    /// The environment `config` each session's sandbox gets, or nil for the default.
    public var environment: JSONValue? {
        didSet { environmentJSON = SessionLog.storedEnvironment(environment) }
    }
    /// `environment` as stored with each session, encoded once.
    private(set) var environmentJSON: String?
    /// Shown in the report: which model produced the messages (`scripted (playbook)` offline).
    public let modelLabel: String

    public init(spec: JobSpec, items: [JobItem], agent: AgentSnapshot, batchId: String, modelLabel: String) {
        self.spec = spec
        self.items = items
        self.agent = agent
        self.agentJSON = agent.json
        self.batchId = batchId
        self.modelLabel = modelLabel
    }

    /// One batch per job name: a rerun of the job continues it.
    public static func batchId(forJob name: String) -> String {
        "batch_" + name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }

    /// The queue a batch's turns go through: `jobs.NAME` for the job's own batch, and one of
    /// its own for any other (a scheduled occurrence's), so that two batches never share one.
    public static func queueName(batchId: String, jobName: String) -> String {
        if batchId == Self.batchId(forJob: jobName) { return "jobs.\(jobName)" }
        let name = "jobs." + batchId.dropFirst("batch_".count)
        guard name.count > 64 else { return name }
        // Too long: cut, with a digest of the whole.
        return String(name.prefix(50)) + "." + String(FNV1a.hash(name), radix: 16).prefix(12)
    }
}

/// Fans a job's items out as sessions through the task queue, at most `concurrency` at a time,
/// and records each item's outcome as soon as it is known, so a killed run loses nothing.
///
/// Items are keyed by content (`JobItem.key`): an item a previous run finished is reported, not
/// redone. An item an earlier run left unfinished (interrupted, or killed with the machine)
/// continues in its own session: a finished turn is taken from the log, an unfinished one is
/// resumed by a worker from the log, with no attempt spent.
public final class BatchRunner: Sendable {
    public struct Options: Sendable {
        public var queue: QueueName = TurnQueue.defaultName
        /// Where each session's starting files go, and its outputs come back from: the file
        /// store, so the workers may be on any host.
        public var files: SessionFiles
        public var workspaceId: String?
        /// Also redo items that finished as failed or timed out, with their attempts reset.
        public var retryFailed = false
        /// Requested on Ctrl-C or SIGTERM: the run stops starting items and drains.
        public var interruption = BatchInterruption()
        /// `--item`: run only these items (by id), starting them over if they had finished;
        /// the others are reported as they stand.
        public var only: Set<String>?
        /// Registers each session with the HTTP API's local workspace; nil: only the log has it.
        public var registry: BatchSessionRegistry?

        /// Where the scripted model finds each session's item fields (`{{field}}` in a
        /// playbook); nil with a real model.
        public var scriptedItems: ScriptedItemFields?
        public init(files: SessionFiles) { self.files = files }
    }

    public enum Progress: Sendable {
        /// `retried`: finished items `--retry-failed` starts over; `resumed`: unfinished items whose
        /// session continues.
        case planned(total: Int, finishedEarlier: Int, toRun: Int, retried: Int, resumed: Int)
        /// `resumed`: the session an earlier run left is continued.
        case itemStarted(itemId: String, attempt: Int, session: String, resumed: Bool)
        case itemFinished(ItemOutcome)
        /// An interruption stopped the item before its turn ended; the next run continues it.
        case itemLeftPending(ItemOutcome)
        case budgetSpent(String)
    }

    public let log: SessionLog
    public let queue: TaskQueue
    public let database: MirrorDatabase
    public let options: Options
    private let progress: @Sendable (Progress) -> Void
    private let notifier: SessionSignal

    public init(log: SessionLog, queue: TaskQueue, database: MirrorDatabase, options: Options, progress: @escaping @Sendable (Progress) -> Void) {
        self.log = log
        self.queue = queue
        self.database = database
        self.options = options
        self.progress = progress
        notifier = SessionSignal.settled(log)
    }

    public func run(_ plan: BatchPlan) async throws -> [ItemOutcome] {
        do {
            let outcomes = try await runItems(plan)
            await notifier.stop()
            return outcomes
        } catch {
            await notifier.stop()
            throw error
        }
    }

    private func runItems(_ plan: BatchPlan) async throws -> [ItemOutcome] {
        let earlier = Dictionary(
            try await database.batchItems(plan.batchId).compactMap { row in row.result.flatMap(ItemOutcome.decode).map { (row.itemKey, $0) } },
            uniquingKeysWith: { first, _ in first })
        try await saveBatch(plan, status: "running", outcomes: [])

        var outcomes: [ItemOutcome?] = Array(repeating: nil, count: plan.items.count)
        var toRun: [(Int, JobItem, ItemOutcome?)] = []
        var retried = 0
        var resumed = 0
        for (position, item) in plan.items.enumerated() {
            guard var previous = earlier[item.key] else {
                if let only = options.only, !only.contains(item.id) {
                    outcomes[position] = ItemOutcome(itemId: item.id, key: item.key, position: position, status: .pending)
                } else {
                    toRun.append((position, item, nil))
                }
                continue
            }
            previous.itemId = item.id
            previous.position = position
            // Kept as it is: an item --item leaves out, or one finished (and not to be retried).
            let kept =
                options.only.map { !$0.contains(item.id) }
                ?? (previous.status.isFinished && !(options.retryFailed && previous.status != .succeeded))
            if kept {
                previous.fromEarlierRun = true
                outcomes[position] = previous
                continue
            }
            if previous.status.isFinished {
                previous.startOver()
                retried += 1
            } else if previous.isResumable {
                resumed += 1
            }
            toRun.append((position, item, previous))
        }
        progress(
            .planned(
                total: plan.items.count, finishedEarlier: plan.items.count - toRun.count, toRun: toRun.count, retried: retried, resumed: resumed))

        let ledger = BudgetLedger(budget: plan.spec.budget, spent: outcomes.compactMap { $0 })
        let interruption = options.interruption
        enum Finished: Sendable {
            case item(Int, ItemOutcome)
            case drainOver
        }
        try await withThrowingTaskGroup(of: Finished.self) { group in
            group.addTask {
                await interruption.drainEnded()
                return .drainOver
            }
            let watcher = Task { await self.watchForCancel(plan) }
            defer { watcher.cancel() }
            var next = toRun.makeIterator()
            var running = 0
            func startNext() async -> Bool {
                guard !interruption.isRequested, let (position, item, previous) = next.next() else { return false }
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
                group.addTask { .item(position, await self.runItem(item, position: position, previous: previous, plan: plan, ledger: ledger)) }
                return true
            }
            while running < plan.spec.concurrency, await startNext() {}
            while running > 0, let finished = try await group.next() {
                switch finished {
                case .item(let position, let outcome):
                    running -= 1
                    outcomes[position] = outcome
                    progress(outcome.status == .pending ? .itemLeftPending(outcome) : .itemFinished(outcome))
                    while running < plan.spec.concurrency, await startNext() {}
                case .drainOver:
                    // Every task left is an item still running: each stops waiting and is left
                    // pending, its session and attempts kept for the next run.
                    group.cancelAll()
                }
            }
            group.cancelAll()
        }
        if let reason = await ledger.exhausted() { progress(.budgetSpent(reason)) }
        // Items this run never reached are reported as they stand: pending, for the next run,
        // or cancelled.
        for (position, item, previous) in toRun where outcomes[position] == nil {
            var waiting = previous ?? ItemOutcome(itemId: item.id, key: item.key, position: position, status: .pending)
            if interruption.isCancelled {
                waiting.status = .cancelled
                waiting.error = "cancelled before it started (drover batch cancel)"
                try? await save(plan, waiting)
            } else if waiting.status != .running {
                waiting.status = .pending
            }
            outcomes[position] = waiting
        }
        let final = outcomes.compactMap { $0 }
        let status =
            interruption.isCancelled
            ? "cancelled" : final.allSatisfy { $0.status.isFinished } ? "completed" : interruption.isRequested ? "interrupted" : "incomplete"
        try await saveBatch(plan, status: status, outcomes: final)
        return final
    }

    /// Watches for `drover batch cancel` (a Redis key) while the run goes on.
    func watchForCancel(_ plan: BatchPlan) async {
        while !Task.isCancelled, !options.interruption.isRequested {
            if (try? await BatchCancel.isRequested(redis: log.redis, batchId: plan.batchId)) == true {
                options.interruption.cancel()
                return
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    // MARK: One item

    /// One turn of an item's session, as far as the batch is concerned.
    private struct Turn {
        let ending: TurnWatcher.Ending
        /// The session's events from its prompt on.
        let events: [StoredEvent]
        let session: SessionID
    }

    private func runItem(_ item: JobItem, position: Int, previous: ItemOutcome?, plan: BatchPlan, ledger: BudgetLedger) async -> ItemOutcome {
        var outcome = previous ?? ItemOutcome(itemId: item.id, key: item.key, position: position, status: .pending)
        outcome.itemId = item.id
        outcome.position = position
        outcome.fromEarlierRun = false
        let started = ContinuousClock.now
        if outcome.startedAt == nil { outcome.startedAt = Timestamp.now() }

        // A session an earlier run left unfinished (it was interrupted, or it died) is continued,
        // not started over: its log holds the work, and its turn resumes from there. That costs
        // no attempt; attempts are sessions, and only a turn that ended in an error starts another.
        outcome.error = nil
        var resumed: Turn?
        if outcome.isResumable, let session = outcome.sessionId.flatMap({ try? SessionID($0) }) {
            do {
                progress(.itemStarted(itemId: item.id, attempt: outcome.attempts, session: session.rawValue, resumed: true))
                resumed = try await resume(session, item: item, outcome: &outcome, plan: plan)
                if resumed == nil { outcome.error = "its session \(session) no longer exists" }
            } catch {
                if Task.isCancelled || error is CancellationError { return await leavePending(outcome, plan: plan) }
                outcome.error = "continuing session \(session): \(error)"
            }
        }
        while true {
            let turn: Turn
            if let earlier = resumed {
                turn = earlier
                resumed = nil
            } else {
                guard outcome.attempts < plan.spec.retries + 1 else { break }
                if options.interruption.isRequested { return await leavePending(outcome, plan: plan) }
                let counted = outcome.attempts
                do {
                    turn = try await attempt(item, outcome: &outcome, plan: plan)
                } catch {
                    if Task.isCancelled || error is CancellationError { return await leavePending(outcome, plan: plan) }
                    // An attempt that failed before its session was recorded still counts.
                    if outcome.attempts == counted { outcome.attempts += 1 }
                    outcome.error = "\(error)"
                    outcome.status = .failed
                    continue
                }
            }
            let reading = TurnReading(turn.events)
            await ledger.add(tokens: reading.inputTokens + reading.outputTokens, seconds: reading.activeSeconds)
            outcome.inputTokens += reading.inputTokens
            outcome.outputTokens += reading.outputTokens
            outcome.activeSeconds += reading.activeSeconds
            outcome.finalMessage = reading.finalMessage.map { String($0.prefix(4000)) }
            switch turn.ending {
            case .timedOut:
                outcome.status = .timedOut
                outcome.error = "no result after \(Self.seconds(plan.spec.timeoutSeconds)) (timeout_seconds); the session was interrupted"
                await end(turn.session)
                return await finish(outcome, started: started, plan: plan)
            case .idle(.endTurn):
                if await accept(&outcome, item: item, session: turn.session, plan: plan) {
                    return await finish(outcome, started: started, plan: plan)
                }
            case .idle(let stopReason):
                outcome.error = "the turn ended with stop_reason \(stopReason.type)" + (reading.lastError.map { ": \($0)" } ?? "")
                if case .requiresAction = stopReason { await end(turn.session) }
            case .terminated:
                outcome.error = "the session was terminated" + (reading.lastError.map { ": \($0)" } ?? "")
            }
            outcome.status = .failed
        }
        return await finish(outcome, started: started, plan: plan)
    }

    /// Starts an attempt: creates its session, seeds its workspace, sends the prompt and waits
    /// for the turn. The attempt counts once its session is recorded.
    private func attempt(_ item: JobItem, outcome: inout ItemOutcome, plan: BatchPlan) async throws -> Turn {
        let session = SessionID.make()
        // In the file store before the session exists: whichever worker builds its workspace,
        // on whichever host, finds them.
        if !item.files.isEmpty {
            try await options.files.setSeed(session, try await options.files.store.upload(item.files.map { ($0.source, $0.destination) }))
        }
        try await options.files.setWanted(session, paths: WorkspaceFiles.wanted(by: plan.spec, item: item))
        options.scriptedItems?.bind(session, fields: item.fields)
        // Redis first: a run that dies before the transaction below leaves a log with no
        // prompt, which nothing wakes, and an item that still reads pending.
        try await log.createMinted(session, agentJSON: plan.agentJSON, environmentJSON: plan.environmentJSON)
        outcome.attempts += 1
        outcome.sessions.append(session.rawValue)
        outcome.status = .running
        guard !options.interruption.isAbandoned else { throw CancellationError() }
        try await database.saveBatchAttempt(
            outcome.row(batchId: plan.batchId), session: session.rawValue, resource: plan.agentJSON, environment: plan.environmentJSON,
            workspaceId: options.workspaceId)
        try await options.registry?.register(session, batchId: plan.batchId, itemId: item.id, jobName: plan.spec.name)
        progress(.itemStarted(itemId: item.id, attempt: outcome.attempts, session: session.rawValue, resumed: false))
        return try await prompt(session, item: item, outcome: outcome, plan: plan)
    }

    /// Sends the item's prompt (once, however often it is called) and waits for the turn.
    private func prompt(_ session: SessionID, item: JobItem, outcome: ItemOutcome, plan: BatchPlan) async throws -> Turn {
        let message = SessionEventPayload.userMessage(UserMessage(text: item.prompt))
        let appended = try await SessionInbox(log: log, queue: queue, turnQueue: options.queue)
            .send(
                [message], to: session, clientKey: "batch-\(plan.batchId)-\(item.key.prefix(16))-\(outcome.attempts)",
                turnID: Self.turnTask(session)
            ).appended
        let deadline = ContinuousClock.now + .seconds(plan.spec.timeoutSeconds)
        let (ending, events) = try await TurnWatcher(log: log, notifier: notifier).wait(session, afterSeq: appended.lastSeq, deadline: deadline)
        return Turn(ending: ending, events: events, session: session)
    }

    /// The turn task of a batch session has a fixed id, so that a rerun which queues the turn
    /// again while the first task is queued, leased or just done adds nothing.
    static func turnTask(_ session: SessionID) -> String { "turn-\(session.rawValue)" }

    /// Continues the session an earlier run left: its finished turn is taken as it is; an
    /// unfinished one is queued again (a no-op while its task is still queued) and waited for, so
    /// a worker wakes the session from its log. Returns nil when there is no session to continue.
    private func resume(_ session: SessionID, item: JobItem, outcome: inout ItemOutcome, plan: BatchPlan) async throws -> Turn? {
        guard try await log.meta(session) != nil else { return nil }
        options.scriptedItems?.bind(session, fields: item.fields)
        // Again, for a session an earlier version started or whose note has expired: the turn
        // that ends next sends these back.
        try await options.files.setWanted(session, paths: WorkspaceFiles.wanted(by: plan.spec, item: item))
        var events: [StoredEvent] = []
        let cursor = try await log.replay(session, afterSeq: 0) { events.append($0) }
        outcome.status = .running
        try await save(plan, outcome)
        guard let promptIndex = events.firstIndex(where: { $0.kind == .userMessage }) else {
            // The run died between creating the session and sending its prompt.
            return try await prompt(session, item: item, outcome: outcome, plan: plan)
        }
        let since = Array(events[(promptIndex + 1)...])
        if let ending = TurnWatcher.ending(of: since) { return Turn(ending: ending, events: since, session: session) }
        try await TurnQueue.enqueue(queue, session: session, name: options.queue, id: Self.turnTask(session))
        let deadline = ContinuousClock.now + .seconds(plan.spec.timeoutSeconds)
        let (ending, rest) = try await TurnWatcher(log: log, notifier: notifier).wait(session, afterSeq: cursor, deadline: deadline)
        return Turn(ending: ending, events: since + rest, session: session)
    }

    /// Output extraction and collection; false (with the error set) when the output is unusable.
    private func accept(_ outcome: inout ItemOutcome, item: JobItem, session: SessionID, plan: BatchPlan) async -> Bool {
        // Output from the final message and nothing to collect: no file is read.
        if plan.spec.output.source == .finalMessage && plan.spec.collect.isEmpty {
            return Self.accept(&outcome, item: item, plan: plan, workspace: nil)
        }
        // The files the worker that ended the turn sent back, on whatever host it ran, written
        // into a directory of this host's that only it writes; extraction and `collect` read
        // that as they would the workspace.
        let received = FileManager.default.temporaryDirectory.appendingPathComponent(
            "drover-outputs-\(session.rawValue)-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: received) }
        do {
            try FileManager.default.createDirectory(at: received, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            guard let exports = try await options.files.exports(session) else {
                outcome.error = "no files came back from the session's workspace: the worker that ended its turn sent none"
                return false
            }
            for export in exports {
                if let refused = export.refused {
                    let isOutput = plan.spec.output.source == .file && export.path == WorkspacePath.normalized(plan.spec.output.file ?? "")
                    outcome.error = isOutput ? "output.file \(export.path): \(refused)" : "collect: \(export.path): \(refused)"
                    return false
                }
                try await options.files.store.write(export.files, under: received)
            }
        } catch {
            outcome.error = "reading the session's files back: \(error)"
            return false
        }
        return Self.accept(&outcome, item: item, plan: plan, workspace: received)
    }

    /// `workspace` is nil only where nothing reads it: output from the final message, nothing to collect.
    private static func accept(_ outcome: inout ItemOutcome, item: JobItem, plan: BatchPlan, workspace: URL?) -> Bool {
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
                guard let workspace else { throw OutputExtractor.Failure(description: "no workspace to collect from") }
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

    /// Stops a session's work for good: interrupt the turn, give it a moment to wind down, then
    /// terminate the session so that a redelivered turn task finds nothing to do.
    private func end(_ session: SessionID, graceful: Bool = true) async {
        if graceful, let meta = try? await log.meta(session), meta.status == "running" || meta.status == "rescheduling" {
            _ = try? await log.append(session, [.userInterrupt(UserInterrupt())])
            _ = try? await TurnWatcher(log: log).wait(session, afterSeq: meta.lastSeq, deadline: .now + .seconds(5))
        }
        try? await log.terminateIfLive(session)
    }

    /// An item an interruption stopped: pending, with its session and attempts as they are, so
    /// that the next run continues it. Saved from a task of its own, which the cancellation of
    /// this one does not reach.
    private func leavePending(_ outcome: ItemOutcome, plan: BatchPlan) async -> ItemOutcome {
        var outcome = outcome
        outcome.status = .pending
        let cancelled = options.interruption.isCancelled
        if cancelled {
            outcome.status = .cancelled
            outcome.error = "cancelled while it ran (drover batch cancel)"
            outcome.finishedAt = Timestamp.now()
        }
        let saved = outcome
        await Task {
            // A cancelled item's session stops for good; a pending one is left for the next run.
            if cancelled, let session = saved.sessionId.flatMap({ try? SessionID($0) }) { await self.end(session, graceful: false) }
            try? await self.save(plan, saved)
        }.value
        return outcome
    }

    private func finish(_ outcome: ItemOutcome, started: ContinuousClock.Instant, plan: BatchPlan) async -> ItemOutcome {
        var outcome = outcome
        if outcome.status == .running || outcome.status == .pending { outcome.status = .failed }
        if outcome.status == .succeeded { outcome.error = nil }
        outcome.finishedAt = Timestamp.now()
        outcome.durationSeconds = ((ContinuousClock.now - started).seconds * 1000).rounded() / 1000
        try? await save(plan, outcome)
        return outcome
    }

    private func save(_ plan: BatchPlan, _ outcome: ItemOutcome) async throws {
        guard !options.interruption.isAbandoned else { return }
        try await database.saveBatchItem(outcome, batchId: plan.batchId)
    }

    private func saveBatch(_ plan: BatchPlan, status: String, outcomes: [ItemOutcome]) async throws {
        guard !options.interruption.isAbandoned else { return }
        var tally: [String: Int] = [:]
        for outcome in outcomes { tally[outcome.status.rawValue, default: 0] += 1 }
        let counts = tally.mapValues { JSONValue.number(Double($0)) }
        let resource = JSONValue.object([
            "id": .string(plan.batchId), "type": .string("batch"), "name": .string(plan.spec.name),
            "job_file": .string(plan.spec.file.path), "status": .string(status), "items": .number(Double(plan.items.count)),
            "counts": .object(counts), "model": .string(plan.modelLabel),
            "report_dir": .string(plan.spec.reportDirectory.path),
            "queue": .string(options.queue.rawValue),
            // Items are keyed by content: an edited submission is a new item, and the old row
            // stays. These are the keys of the job's items now, so `batch show` can tell.
            "current_item_keys": .array(plan.items.map { .string($0.key) }),
        ])
        try await database.saveBatch(
            id: plan.batchId, workspace: options.workspaceId, name: plan.spec.name, jobFile: plan.spec.file.path, status: status,
            resource: resource.compactJSON)
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
