import ArgumentParser
import DroverBrain
import DroverCore
import DroverHands
import DroverStore
import Foundation
import Logging
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run the brain: claim turn tasks and run sessions' agent loops.",
        discussion: """
        The model comes from ANTHROPIC_BASE_URL (default https://api.anthropic.com) and
        ANTHROPIC_API_KEY. Tools run in bubblewrap sandboxes on per-session workspaces under
        $DROVER_DATA_DIR/hands (or, with --hands in-process, a stand-in with echo and sleep).
        SIGTERM or Ctrl-C drains: no new claims; running turns get --drain-seconds to finish,
        then are handed back to the queue for another worker.
        """
    )

    @Option(help: "Sessions run at once.") var concurrency = 4
    @Option(help: "Lease length in seconds; heartbeats renew it every third.") var leaseSeconds = 30
    @Option(help: "Seconds running turns get to finish on SIGTERM before they are handed back.") var drainSeconds = 30
    @Option(help: "Model for sessions created without an agent snapshot.") var model = "claude-sonnet-4-5"
    @Option(help: "Tools: sandbox (bubblewrap; the default where it is installed) or in-process (echo and sleep only).")
    var hands = Sandbox.bubblewrap == nil ? "in-process" : "sandbox"

    func validate() throws {
        guard hands == "sandbox" || hands == "in-process" else { throw ValidationError("--hands: use sandbox or in-process") }
        if hands == "sandbox" && Sandbox.bubblewrap == nil {
            throw ValidationError("--hands sandbox needs bubblewrap: apt-get install -y bubblewrap")
        }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let key = environment["ANTHROPIC_API_KEY"], !key.isEmpty else {
            FileHandle.standardError.write(Data("""
                drover: error: ANTHROPIC_API_KEY is not set. Fix: export ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL \
                for a compatible server, such as `drover model-stub`).

                """.utf8))
            throw ExitCode(1)
        }
        var configuration = AnthropicConfiguration(apiKey: key)
        if let base = environment["ANTHROPIC_BASE_URL"], !base.isEmpty {
            configuration = AnthropicConfiguration(baseURL: base, apiKey: key)
        }
        try await withRuntime(poolSize: concurrency * 3 + 4, exitOnSignal: false) { runtime in
            let log = try runtime.sessionLog
            let toolset = hands == "sandbox" ? AgentToolset(root: runtime.configuration.dataDirectory.appendingPathComponent("hands")) : nil
            let hand: any Hand = toolset ?? InProcessHand()
            // Warm sandboxes for sessions without an environment, ready before the first turn.
            await toolset?.pool.prewarm()
            let runner = TurnRunner(
                log: log, model: AnthropicMessagesClient(configuration: configuration), hand: hand,
                deltas: DeltaPublisher(redis: runtime.redis), defaultAgent: AgentSnapshot(model: model)
            )
            var options = Worker.Options()
            options.concurrency = concurrency
            options.leaseTTL = .seconds(leaseSeconds)
            options.drainTimeout = .seconds(drainSeconds)
            let worker = Worker(queue: TaskQueue(redis: runtime.redis), runner: runner, options: options)
            note("drover worker \(options.workerId): \(concurrency) slots, model at \(configuration.baseURL), \(hands) hands")
            let group = ServiceGroup(
                services: [WorkerService(worker: worker)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "drover.worker")
            )
            try await group.run()
            await toolset?.pool.shutdown()
            note("drover worker: drained")
        }
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
