import ArgumentParser
import DroverCore
import DroverQueue
import DroverRuntime
import DroverSessionLog
import DroverWebhooks
import Foundation
import Logging
import ServiceLifecycle

struct RecorderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recorder",
        abstract: "Mirror every session event from Redis into SQLite (DROVER_DB).",
        discussion: """
            Runs until SIGTERM or Ctrl-C, then finishes its batch and exits. Safe to kill at any
            moment: unacknowledged events are delivered again and the mirror is idempotent on
            (session_id, seq). Also trims the Redis streams of quiet sessions once SQLite has them.
            """,
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the recorder (the default).")

        @Flag(help: "Record what is there now, then exit.")
        var once = false

        @Option(help: "Events per SQLite transaction.")
        var batchSize = 1000

        @Option(
            help:
                "Milliseconds to wait after a batch smaller than --batch-size before reading the next, to gather more into one SQLite transaction (0: read again at once)."
        )
        var lingerMs = 10

        @Option(help: "Seconds a session must be quiet before its Redis stream is trimmed.")
        var retentionIdleSeconds = 600

        @Option(help: "The consumer name; give each recorder on a host its own.")
        var consumer = "recorder"

        @OptionGroup var observability: ObservabilityOptions

        func run() async throws {
            let observed = try observability.bootstrap()
            try await withRuntime(exitOnSignal: once, startup: once ? .failFast : .waitForRedis(role: "drover recorder")) { runtime in
                observed.metrics?.sampleRecorder(runtime.redis)
                var options = Recorder.Options()
                options.batchSize = batchSize
                options.linger = .milliseconds(max(0, lingerMs))
                options.retentionIdle = .seconds(retentionIdleSeconds)
                options.consumer = consumer
                options.afterCommit = WebhookOutbox(database: try runtime.database(), queue: TaskQueue(redis: runtime.redis)).recorderHook
                let recorder = Recorder(redis: runtime.redis, database: try runtime.database(), options: options)
                if once {
                    let count = try await recorder.runOnce()
                    let trimmed = try await recorder.applyRetention()
                    print("recorded \(count) events; trimmed \(trimmed) quiet sessions from Redis")
                    return
                }
                note("drover recorder: mirroring into \(runtime.configuration.databasePath.path)")
                let group = ServiceGroup(
                    services: [RecorderService(recorder: recorder)]
                        + [observability.metricsService(observed, role: "recorder")].compactMap { $0 },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: Logger(label: "drover.recorder")
                )
                try await group.run()
                note("drover recorder: stopped after \(recorder.stats.eventsRecorded) events")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the backlog, the mirrored count, and each live recorder's lag, as JSON.")

        func run() async throws {
            try await withRuntime { runtime in
                let backlog = try await Recorder.backlog(runtime.redis)
                let mirrored = try await runtime.database().eventCount()
                let recorders = try await Recorder.published(runtime.redis).mapValues { fields in
                    JSONValue.object(fields.mapValues { Double($0).map(JSONValue.number) ?? .string($0) })
                }
                print(
                    try encodeJSON(
                        JSONValue.object([
                            "backlog_events": .number(Double(backlog)),
                            "mirrored_events": .number(Double(mirrored)),
                            "recorders": .object(recorders),
                        ])))
            }
        }
    }
}

/// The recorder under a service group: graceful shutdown cancels the loop between batches.
struct RecorderService: Service {
    let recorder: Recorder

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            do {
                try await recorder.run()
            } catch is CancellationError {
            }
        }
    }
}
