import ArgumentParser
import DroverBrain
import DroverHands
import DroverQueue
import DroverRuntime
import DroverSelfHosted
import Foundation
import Logging
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run the brain: claim turn tasks and run sessions' agent loops.",
        discussion: """
            The model comes from ANTHROPIC_BASE_URL (default https://api.anthropic.com) and
            ANTHROPIC_API_KEY; with no key (or with --model-script), the scripted model answers,
            in this process, and the first line of output says so (docs/scripted-model.md). Tools run in bubblewrap sandboxes on per-session workspaces under
            $DROVER_DATA_DIR/hands (or, with --hands in-process, a stand-in with echo and sleep).
            SIGTERM or Ctrl-C drains: no new claims; running turns get --drain-seconds to finish,
            then are handed back to the queue for another worker.
            """
    )

    @OptionGroup var worker: WorkerOptions
    @OptionGroup var observability: ObservabilityOptions

    func run() async throws {
        let observed = try observability.bootstrap()
        let model = try await worker.resolveModel()
        note("drover worker: model: \(model.label)")
        try await withRuntime(exitOnSignal: false, startup: .waitForRedis(role: "drover worker")) { runtime in
            let (worker, mcp, toolset) = try self.worker.makeWorker(runtime: runtime, model: model.configuration)
            // Warm sandboxes for sessions without an environment, ready before the first turn.
            await toolset?.pool.prewarm()
            observed.metrics?.sampleQueues(runtime.redis)
            if let pool = toolset?.pool { observed.metrics?.samplePool(pool) }
            note(
                "drover worker \(worker.options.workerId): \(self.worker.concurrency) slots, \(self.worker.hands) hands"
            )
            let group = ServiceGroup(
                services: [WorkerService(worker: worker), try RemoteHandsService(runtime: runtime)]
                    + [observability.metricsService(observed, role: "worker")].compactMap { $0 },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "drover.worker")
            )
            try await group.run()
            // Stdio MCP servers are this worker's children, and sandboxes its grandchildren: stop them with it.
            await mcp.shutdown()
            await toolset?.pool.shutdown()
            await model.scripted?.stop()
            note("drover worker: drained")
        }
    }
}

/// Answers the calls of self-hosted workers whose leases lapsed (`RemoteHandsSweeper`), in every
/// process that runs a worker: any of them may, and each call is answered once.
struct RemoteHandsService: Service {
    let sweeper: RemoteHandsSweeper

    init(runtime: RuntimeEnvironment) throws {
        let inbox = SessionInbox(log: try runtime.sessionLog, queue: TaskQueue(redis: runtime.redis))
        sweeper = RemoteHandsSweeper(inbox: inbox, work: WorkQueue(redis: runtime.redis))
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await sweeper.run() }
    }
}

struct WorkerService: Service {
    let worker: Worker

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await worker.run()
        } onGracefulShutdown: {
            worker.drain()
        }
    }
}
