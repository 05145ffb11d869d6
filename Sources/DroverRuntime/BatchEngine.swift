import DroverBrain
import DroverCore
import DroverDatabase
import DroverHands
import DroverJobs
import DroverModelStub
import DroverQueue
import DroverSessionLog
import DroverTools
import DroverWebhooks
import Foundation

/// The model a job's sessions call: the real one when ANTHROPIC_API_KEY is set, otherwise the
/// scripted model server, in process, following the job's playbook.
public struct JobModel: Sendable {
    public let client: any ModelClient
    /// For the report and the first line of output.
    public let label: String
    public let stub: ScriptedModelServer?
    /// Where the scripted model finds each session's item fields; bind them as sessions start.
    public var items: ScriptedItemFields? = nil

    public static func resolve(for spec: JobSpec, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> JobModel {
        if let configuration = AnthropicConfiguration(environment: environment) {
            return JobModel(
                client: AnthropicMessagesClient(configuration: configuration), label: "Anthropic Messages API at \(configuration.baseURL)", stub: nil)
        }
        guard let playbook = spec.playbook else {
            throw JobFileError(
                file: spec.file.path, line: nil, field: "playbook",
                message: "no ANTHROPIC_API_KEY is set and the job has no playbook for the scripted model",
                fix: "export ANTHROPIC_API_KEY to use a real model, or add `playbook:` (see Jobs/README.md)")
        }
        let items = ScriptedItemFields()
        var script = ModelScript(playbook: playbook)
        // A coordinator's threads follow their own playbooks, found by their system prompts.
        script.agents = spec.threadPlaybooks.map { (marker: $0.system, script: ModelScript(playbook: $0.playbook)) }
        let stub = try await ScriptedModelServer.start(script: script, items: items)
        let client = AnthropicMessagesClient(configuration: stub.clientConfiguration)
        return JobModel(client: client, label: "scripted model (the job's playbook; no ANTHROPIC_API_KEY set)", stub: stub, items: items)
    }
}

extension ScriptedModelServer {
    /// How this process's brain calls the scripted model: named sessions, so that a playbook
    /// finds its item's fields.
    public var clientConfiguration: AnthropicConfiguration {
        var configuration = AnthropicConfiguration(baseURL: baseURL, apiKey: "scripted")
        configuration.namesSessions = true
        return configuration
    }
}

/// Runs a batch with the brain, the hands and the recorder in this process, over the runtime's
/// Redis and SQLite: what `drover run` and `drover bench batch` share.
public struct BatchEngine {
    public let runtime: RuntimeEnvironment
    public let concurrency: Int
    public let model: JobModel
    public let hand: any Hand
    public let handsRoot: URL
    public let queueName: QueueName

    public init(runtime: RuntimeEnvironment, concurrency: Int, model: JobModel, hand: any Hand, handsRoot: URL, queueName: QueueName) {
        self.runtime = runtime
        self.concurrency = concurrency
        self.model = model
        self.hand = hand
        self.handsRoot = handsRoot
        self.queueName = queueName
    }

    /// Starts workers and the recorder, runs `body`, then drains the workers and records the
    /// last events, so the SQLite mirror is complete when the report is written. The caller
    /// must hold the batch's lock (`BatchLock`): leases others hold on the queue are taken back.
    public func run<T: Sendable>(_ body: @Sendable (SessionLog, TaskQueue, MirrorDatabase) async throws -> T) async throws -> T {
        let log = try runtime.sessionLog
        let database = try runtime.database()
        let queue = TaskQueue(redis: runtime.redis)
        let runner = TurnRunner(
            log: log, model: model.client, hand: hand, deltas: DeltaPublisher(redis: runtime.redis),
            defaultAgent: AgentSnapshot(model: "claude-sonnet-4-5"), context: try ContextPolicy.fromEnvironment())
        var options = Worker.Options()
        options.concurrency = concurrency
        options.queue = queueName
        options.leaseTTL = .seconds(15)
        options.drainTimeout = .seconds(2)
        // The caller holds the batch's lock, so a lease on its queue held by another worker is
        // one a run that died left: handed back now, its turn resumes at once rather than after
        // the lease runs out. With no workers here, the batch's turns are other hosts' workers'
        // (`drover worker --queue`), whose leases are theirs to keep.
        if concurrency > 0 { try await queue.reclaimLeases(queueName, keepingOwnerPrefix: options.workerId + "/") }
        let worker = Worker(queue: queue, runner: runner, options: options)
        var recording = Recorder.Options()
        recording.afterCommit = WebhookOutbox(database: database, queue: queue).recorderHook
        let recorder = Recorder(redis: runtime.redis, database: database, options: recording)
        let result = try await withThrowingTaskGroup(of: T?.self) { group in
            if concurrency > 0 {
                group.addTask {
                    try await worker.run()
                    return nil
                }
            }
            group.addTask {
                do { try await recorder.run() } catch is CancellationError {}
                return nil
            }
            let value = try await body(log, queue, database)
            // Nothing waits on a turn still running now (the run was interrupted): hand it back
            // at once, for the next run to resume.
            worker.drain(timeout: .zero)
            group.cancelAll()
            while let _ = try? await group.next() {}
            return value
        }
        _ = try? await recorder.runOnce()
        await model.stub?.stop()
        return result
    }
}
