import ArgumentParser
import DroverBrain
import DroverCore
import DroverHands
import DroverJobs
import DroverQueue
import DroverRuntime
import DroverSchedule
import DroverTools
import Foundation

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a batch job from Jobs/: one agent session per item, with a report.",
        discussion: """
            Each item becomes a session, fanned out through the task queue to workers in this
            process, at the job's `concurrency`. Progress shows live; the report (report.csv,
            report.json, summary.md) goes to the job's report folder (default reports/NAME/).
            Exits 0 when every item succeeded, 1 when any failed, timed out or was skipped, 2 for a
            bad job file.

            Resumable: items are keyed by their content, and every outcome is saved as soon as it is
            known. Run the same job again (or `drover batch resume ID`) and finished items are not
            redone; an item that was running when the run stopped continues in its own session,
            from its log, with no attempt spent.

            Ctrl-C or SIGTERM stops starting items and gives running ones --drain-seconds to
            finish; the rest are left pending, and the next run continues them. A second Ctrl-C
            stops at once, with the same guarantee. Exits 130 (143 for SIGTERM) when interrupted.

            With no ANTHROPIC_API_KEY the sessions use the scripted model, following the job's
            `playbook:`; the tools, tests and files are real. The format: Jobs/README.md.
            """
    )

    @Argument(help: "The job file, such as Jobs/grade-assignments.yaml.")
    var job: String

    @Flag(help: "Also redo items that finished as failed or timed out.")
    var retryFailed = false

    @Option(help: "Override the job's concurrency.")
    var concurrency: Int?

    @Option(help: "Write the report here instead of the job's report folder.")
    var reportDir: String?

    @Option(help: "On Ctrl-C or SIGTERM, the seconds running items get to finish before they are left pending for the next run.")
    var drainSeconds = 30

    @Option(help: "Run as this batch (default batch_NAME, one per job): a scheduled job's fires each get their own.")
    var batchId: String?

    @Option(help: "Run only this item (its id, as in the report), starting it over if it finished; repeat for more.")
    var item: [String] = []

    @Option(
        help: ArgumentHelp(
            "Sessions this process runs at once (default: the job's concurrency). 0 leaves every item to `drover worker --queue jobs.NAME` on other hosts.",
            valueName: "n"))
    var workers: Int?

    func run() async throws {
        if let batchId, batchId.wholeMatch(of: /batch_[a-z0-9_]{1,120}/) == nil {
            note("drover: error: --batch-id: '\(batchId)' is not a batch id. Fix: use batch_ followed by lowercase letters, digits and _")
            throw ExitCode(2)
        }
        guard (0...3600).contains(drainSeconds) else {
            note("drover: error: --drain-seconds: \(drainSeconds) is out of range. Fix: use 0 to 3600")
            throw ExitCode(2)
        }
        if let workers, !(0...512).contains(workers) {
            note("drover: error: --workers: \(workers) is out of range. Fix: use 0 (workers on other hosts only) to 512")
            throw ExitCode(2)
        }
        let code = try await JobRun(
            jobPath: job, retryFailed: retryFailed, concurrency: concurrency, reportDir: reportDir, drainSeconds: drainSeconds,
            batchId: batchId, only: item.isEmpty ? nil : Set(item), workers: workers
        ).execute()
        if code != 0 { throw ExitCode(code) }
    }
}

/// One `drover run` (or `drover batch resume`), start to finish.
struct JobRun {
    let jobPath: String
    var retryFailed = false
    var concurrency: Int?
    var reportDir: String?
    var drainSeconds = 30
    var batchId: String?
    var only: Set<String>?
    /// Sessions this process runs; nil: the job's concurrency; 0: other hosts' workers only.
    var workers: Int?

    /// The process exit code: 0 all succeeded, 1 some did not, 2 the job file is bad.
    func execute() async throws -> Int32 {
        var spec: JobSpec
        do {
            spec = try JobFileParser.load(path: jobPath)
        } catch {
            note("drover: error: \(error)")
            return 2
        }
        if let concurrency {
            guard (1...512).contains(concurrency) else {
                note("drover: error: --concurrency: \(concurrency) is out of range. Fix: use 1 to 512")
                return 2
            }
            spec.concurrency = concurrency
        }
        if let reportDir { spec.reportDirectory = URL(fileURLWithPath: reportDir).standardizedFileURL }
        // With no workers here, the sandboxes are other hosts'.
        guard let bubblewrap = Sandbox.bubblewrap ?? (workers == 0 ? "" : nil) else {
            note(
                "drover: error: jobs run their tools in bubblewrap sandboxes, and bwrap is not installed. Fix: ./scripts/setup (or apt-get install -y bubblewrap)"
            )
            return 2
        }
        _ = bubblewrap

        let model: JobModel
        do {
            model = try await JobModel.resolve(for: spec)
        } catch {
            note("drover: error: \(error)")
            return 2
        }
        // With the agent in the file, the items are checked (globs, CSVs, placeholders) before
        // anything starts: no Redis, no data directory, no session for a job that cannot run.
        var checkedItems: [JobItem]?
        if case .inline(let inline) = spec.agent {
            do {
                checkedItems = try JobItems.expand(spec, agentJSON: inline.compactJSON)
            } catch {
                note("drover: error: \(error)")
                return 2
            }
        }
        let configuration = try DroverConfiguration.fromEnvironment()
        let defaults =
            configuration.redisURL == nil ? "embedded Redis and SQLite in \(configuration.dataDirectory.path)" : "Redis at DROVER_REDIS_URL"
        say("drover run \(spec.name): \(model.label); \(defaults); bubblewrap sandboxes")

        // Signals are this command's own: the first drains the run, the second ends it (below).
        let expanded = checkedItems
        return try await withRuntime(announce: false, exitOnSignal: false) { runtime in
            let database = try runtime.database()
            // The file's own JSON keys the items (so keys stay what they were); the sessions
            // get the agent decoded from it here, once.
            let agentJSON: String
            let agent: AgentSnapshot
            do {
                switch spec.agent {
                case .inline(let inline):
                    agentJSON = inline.compactJSON
                    agent = try AgentSnapshot(decoding: inline)
                case .named(let name):
                    guard let stored = try await database.agentResource(named: name) else {
                        note(
                            "drover: error: \(spec.file.path): agent: no stored agent is named `\(name)`. Fix: create it through the API (POST /v1/agents), or write the agent inline"
                        )
                        return 2
                    }
                    agentJSON = stored
                    agent = try AgentParams.snapshot(ofSessionAgent: try JSONValue.parse(stored))
                }
            } catch {
                note("drover: error: \(spec.file.path): agent: \(error)")
                return 2
            }
            let items: [JobItem]
            do {
                items = try expanded ?? JobItems.expand(spec, agentJSON: agentJSON)
            } catch {
                note("drover: error: \(error)")
                return 2
            }
            let environmentConfig: JSONValue?
            switch spec.environment {
            case nil:
                environmentConfig = nil
            case .inline(let environment)?:
                environmentConfig = environment.objectValue?["config"]
            case .named(let name)?:
                guard let stored = try await database.environmentResource(named: name) else {
                    note(
                        "drover: error: \(spec.file.path): environment: no stored environment is named `\(name)`. Fix: create it through the API (POST /v1/environments), or write it inline as {name: ..., config: {...}}"
                    )
                    return 2
                }
                environmentConfig = (try? JSONValue.parse(stored))?.objectValue?["config"]
            }
            do {
                _ = try EnvironmentConfig.parse(environmentConfig)
            } catch {
                note("drover: error: \(spec.file.path): environment: \(error)")
                return 2
            }
            let handsRoot = try runtime.handsRoot()
            let batchId = self.batchId ?? BatchPlan.batchId(forJob: spec.name)
            var planned = BatchPlan(spec: spec, items: items, agent: agent, batchId: batchId, modelLabel: model.label)
            planned.environment = environmentConfig
            let plan = planned
            if let only {
                let known = Set(items.map(\.id))
                let unknown = only.subtracting(known).sorted()
                guard unknown.isEmpty else {
                    note(
                        "drover: error: --item: \(unknown.joined(separator: ", ")) is not an item of \(spec.name). Fix: use an id from the report, such as \(items.prefix(5).map(\.id).joined(separator: ", "))"
                    )
                    return 2
                }
            }
            let queueName = try QueueName(BatchPlan.queueName(batchId: batchId, jobName: spec.name))
            let toolset = AgentToolset(
                root: handsRoot, limits: try SandboxLimits.fromEnvironment(), pool: try runtime.sandboxPoolSettings(gate: try runtime.egressGate()),
                egressRecorder: runtime.egressRecorder())
            let engine = BatchEngine(
                runtime: runtime, concurrency: workers ?? spec.concurrency, model: model,
                hand: toolset, handsRoot: handsRoot, queueName: queueName)
            let display = ProgressDisplay(columns: spec.output.columns)
            var options = BatchRunner.Options(files: try runtime.sessionFiles())
            options.retryFailed = retryFailed
            options.scriptedItems = model.items
            options.queue = queueName
            options.only = only
            // The local workspace the API and the deployments use: usage reports show one, and
            // `GET /v1/sessions` lists the batch's sessions.
            options.workspaceId = DeploymentStore.defaultWorkspace
            options.registry = try await BatchSessionRegistry.prepare(
                database: database, workspace: DeploymentStore.defaultWorkspace, spec: spec, agentJSON: agentJSON)
            let runnerOptions = options
            let interruption = options.interruption
            let drain = drainSeconds
            let signals = InterruptSignals(
                first: { signal in
                    interruption.request(drain: .seconds(drain))
                    display.notice(
                        "\(InterruptSignals.name(signal)): starting no more items; running ones get up to \(drain) s to finish, then are left pending for the next run. Ctrl-C again stops at once."
                    )
                },
                again: { signal in
                    interruption.abandon()
                    display.close()
                    note(
                        "drover: \(InterruptSignals.name(signal)) again: stopping now. Unfinished items keep their sessions and attempts; run the job again to continue them."
                    )
                    // Like kill -9, but the embedded server writes its AOF and stops. Sandboxes
                    // die with this process; nothing else is touched, so no running tool fails
                    // on the way down and has that taken for its result.
                    Task {
                        await runtime.embedded?.stop()
                        exit(128 + signal)
                    }
                })
            defer { signals.cancel() }
            display.startTicking()
            say(
                "batch \(batchId) · \(items.count) items · concurrency \(spec.concurrency) · timeout \(BatchRunnerFormatting.seconds(spec.timeoutSeconds)) per item"
            )
            let lock = BatchLock(redis: runtime.redis, batchId: batchId)
            do {
                try await lock.acquire(batchId: batchId)
            } catch let held as BatchLock.Held {
                display.stop()
                note("drover: error: \(held)")
                return 3
            }
            // A cancel meant for an earlier run of this batch does not stop this one.
            try await BatchCancel.clear(redis: runtime.redis, batchId: batchId)
            let outcomes: [ItemOutcome]
            do {
                outcomes = try await lock.holding {
                    try await engine.run { log, queue, database in
                        try await BatchRunner(log: log, queue: queue, database: database, options: runnerOptions) { display.handle($0) }.run(plan)
                    }
                }
                await toolset.pool.shutdown()
            } catch {
                // Ends the sandboxes and unmounts their volumes; the images stay, for a rerun.
                await toolset.pool.shutdown()
                if interruption.isAbandoned, let signal = signals.received { return 128 + signal }
                throw error
            }
            // Stopped at once: what running items saw as the run went down is not their result.
            if interruption.isAbandoned, let signal = signals.received { return 128 + signal }
            display.stop()
            let report = BatchReport(plan: plan, outcomes: outcomes)
            let files = try report.write()
            let counts = report.counts
            var order: [ItemOutcome.Status] = [.succeeded, .failed, .timedOut, .skipped]
            if counts[.cancelled] != nil { order.append(.cancelled) }
            var tally = order.map { "\(counts[$0] ?? 0) \($0.rawValue)" }
            let unfinished = (counts[.pending] ?? 0) + (counts[.running] ?? 0)
            if unfinished > 0 { tally.append("\(unfinished) pending") }
            say(
                (interruption.isCancelled ? "cancelled: " : interruption.isRequested ? "interrupted: " : "finished: ") + tally.joined(separator: ", ")
            )
            say("report: " + files.map { relativeToCurrentDirectory($0) }.joined(separator: ", "))
            if let signal = signals.received, !interruption.isCancelled {
                say("run `drover run \(jobPath)` again to continue the \(unfinished) pending items")
                return 128 + signal
            }
            return report.succeeded ? 0 : 1
        }
    }
}

enum BatchRunnerFormatting {
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }
}

func relativeToCurrentDirectory(_ url: URL) -> String {
    let current = FileManager.default.currentDirectoryPath + "/"
    return url.path.hasPrefix(current) ? String(url.path.dropFirst(current.count)) : url.path
}

/// A line on standard output, written at once (progress lines must not wait in a buffer).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
