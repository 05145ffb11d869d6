import ArgumentParser
import DroverCore
import DroverDatabase
import DroverQueue
import DroverRuntime
import DroverSchedule
import DroverSessionLog
import DroverWebhooks
import Foundation
import Logging
import ServiceLifecycle

/// The deployments store at `DROVER_DB`; needs no Redis.
func openDeploymentStore() throws -> DeploymentStore {
    let configuration = try DroverConfiguration.fromEnvironment()
    return DeploymentStore(database: try MirrorDatabase(path: configuration.databasePath.path))
}

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Make the stored deployments (Schedules/) or job catalog (Jobs/) match the files, and print the difference.",
        discussion: """
            Schedules/: creates a deployment per new file, updates changed ones (a new agent version
            when the agent changed), leaves unchanged ones alone, and archives deployments whose file
            is gone. A deployment paused by hand stays paused while its file is unchanged.

            Jobs/ (files with `items:`): checks every job file and records it in the job catalog;
            one bad file changes nothing. Run a job with `drover run`.
            """
    )

    @Argument(help: "A directory of schedule files (e.g. Schedules/) or one file.")
    var path: String

    @Flag(help: "Only print what would change.")
    var dryRun = false

    @Flag(help: "Print the difference as JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw FieldError(field: "path", message: "'\(path)' does not exist", fix: "pass a directory of schedule files, e.g. Schedules/")
            }
            if isDirectory.boolValue, JobCatalogCommand.holdsJobs(path) {
                try await JobCatalogCommand.apply(directory: path, dryRun: dryRun, json: json)
                return
            }
            let store = try openDeploymentStore()
            // `job: NAME` finds its file in the catalog `drover apply Jobs/` keeps.
            let catalog = Dictionary(
                try await store.database.jobs().filter { $0.removedAt == nil }.map { row in
                    (row.name, (try? JSONValue.parse(row.resource))?.objectValue?["path"]?.stringValue ?? row.file)
                }, uniquingKeysWith: { $1 })
            let files =
                isDirectory.boolValue
                ? try ScheduleFile.loadDirectory(path, jobCatalog: catalog) : [try ScheduleFile.load(path, jobCatalog: catalog)]
            let report = try await store.apply(files, dryRun: dryRun)
            if json {
                print(try encodeJSON(report))
                return
            }
            let verb = dryRun ? "would be " : ""
            for name in report.created { print("+ \(name)  (\(verb)created)") }
            for name in report.updated { print("~ \(name)  (\(verb)updated)") }
            for name in report.archived { print("- \(name)  (\(verb)archived)") }
            for name in report.unchanged { print("= \(name)  (unchanged)") }
            for name in report.pausedByHand {
                print("  note: \(name) was paused by hand and stays paused; `drover deployments unpause \(name)` resumes it")
            }
            print(
                "\(dryRun ? "dry run: " : "")\(report.created.count) created, \(report.updated.count) updated, \(report.unchanged.count) unchanged, \(report.archived.count) archived"
            )
        }
    }
}

struct DeploymentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deployments",
        abstract: "List, show, pause, unpause and run deployments (from `drover apply Schedules/`).",
        subcommands: [List.self, Show.self, Pause.self, Unpause.self, RunNow.self, Runs.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per deployment, or JSON.")
        @Flag(help: "Print the SDK's deployment objects as JSON.") var json = false
        @Flag(help: "Include archived deployments.") var archived = false

        func run() async throws {
            try await reportingErrors {
                let store = try openDeploymentStore()
                let rows = try await store.list(includeArchived: archived)
                if json {
                    print(try encodeJSON(JSONValue.object(["data": .array(rows.map { store.resource($0) })])))
                    return
                }
                printTable(
                    header: ["NAME", "STATUS", "SCHEDULE", "NEXT RUN", "LAST RUN", "ID"],
                    rows: rows.map { row in
                        let resource = store.resource(row).objectValue ?? [:]
                        let schedule = resource["schedule"]?.objectValue
                        let expression = schedule.map { "\($0["expression"]?.stringValue ?? "") \($0["timezone"]?.stringValue ?? "")" } ?? "manual"
                        let next =
                            schedule?["upcoming_runs_at"].flatMap { value -> String? in
                                if case .array(let items) = value { return items.first?.stringValue }
                                return nil
                            } ?? "-"
                        var status = row.archivedAt != nil ? "archived" : row.status
                        if row.archivedAt == nil, let error = resource["paused_reason"]?.objectValue?["error"]?.objectValue?["type"]?.stringValue {
                            status += " (\(error))"
                        }
                        return [row.name, status, expression, next, row.lastRunAt ?? "-", row.id]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The deployment as the SDK's JSON, with upcoming_runs_at.")
        @Argument(help: "The deployment's name or id.") var name: String

        func run() async throws {
            try await reportingErrors {
                let store = try openDeploymentStore()
                print(try encodeJSON(store.resource(try await store.find(name))))
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a deployment from firing until unpaused.")
        @Argument(help: "The deployment's name or id.") var name: String

        func run() async throws {
            try await reportingErrors {
                let row = try await openDeploymentStore().pause(name)
                print("\(row.name): paused")
            }
        }
    }

    struct Unpause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume firing; occurrences missed while paused are not owed.")
        @Argument(help: "The deployment's name or id.") var name: String

        func run() async throws {
            try await reportingErrors {
                let row = try await openDeploymentStore().unpause(name)
                print("\(row.name): \(row.status)")
            }
        }
    }

    struct RunNow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Fire a deployment now (a manual run) and print the run as JSON.")
        @Argument(help: "The deployment's name or id.") var name: String

        func run() async throws {
            try await withRuntime { runtime in
                let store = DeploymentStore(database: try runtime.database())
                let row = try await store.find(name)
                guard row.archivedAt == nil else {
                    throw FieldError(field: "deployment", message: "'\(name)' is archived", fix: "add its file back and run `drover apply`")
                }
                var firer = DeploymentFirer(store: store, sessionLog: try runtime.sessionLog, queue: TaskQueue(redis: runtime.redis))
                firer.webhooks = WebhookOutbox(database: try runtime.database(), queue: TaskQueue(redis: runtime.redis))
                let launcher = BatchLauncher(dataDirectory: runtime.configuration.dataDirectory, redis: runtime.redis)
                firer.launchBatch = { try await launcher.launch($0) }
                print(try encodeJSON(try await firer.fire(row, scheduledAt: nil, now: Date())))
            }
        }
    }

    struct Runs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A deployment's runs (or all runs), newest first, as the SDK's JSON.")
        @Argument(help: "The deployment's name or id; all deployments if omitted.") var name: String?
        @Option(help: "At most this many runs.") var limit = 20

        func run() async throws {
            try await reportingErrors {
                let runs = try await openDeploymentStore().runs(name, limit: limit)
                print(try encodeJSON(JSONValue.object(["data": .array(runs)])))
            }
        }
    }
}

struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Fire cron deployments; run several, and one leads (a fenced Redis lock).",
        discussion: """
            Runs until SIGTERM or Ctrl-C, then releases the lock so another scheduler leads at once.
            A killed leader's lock expires after --lock-ttl-ms, and the next leader fires what is due,
            each occurrence once. --clock-rate runs the scheduler on simulated time (for tests and
            demos): --clock-rate 60 lives through a minute every second, from now or --clock-start.
            """
    )

    @Option(help: "Milliseconds between checks (and lock renewals).") var tickMs = 1000
    @Option(help: "Milliseconds a leader that stopped renewing keeps the lock.") var lockTtlMs = 10_000
    @Option(help: "Simulated time: this many simulated seconds per real second.") var clockRate: Double?
    @Option(help: "Simulated time: where the clock starts (ISO 8601; default now).") var clockStart: String?
    @OptionGroup var observability: ObservabilityOptions

    func validate() throws {
        guard tickMs > 0, lockTtlMs > tickMs * 2 else {
            throw ValidationError("--lock-ttl-ms must be more than twice --tick-ms, so a live leader renews in time")
        }
        if let clockRate, clockRate <= 0 { throw ValidationError("--clock-rate must be positive") }
        if let clockStart, (try? Date(clockStart, strategy: .iso8601)) == nil {
            throw ValidationError("--clock-start must be ISO 8601, e.g. 2026-11-25T10:00:00Z")
        }
    }

    func run() async throws {
        let observed = try observability.bootstrap()
        try await withRuntime(exitOnSignal: false, startup: .waitForRedis(role: "drover scheduler")) { runtime in
            let database = try runtime.database()
            let store = DeploymentStore(database: database)
            var firer = DeploymentFirer(
                store: store, sessionLog: SessionLog(redis: runtime.redis, database: database), queue: TaskQueue(redis: runtime.redis))
            firer.webhooks = WebhookOutbox(database: database, queue: TaskQueue(redis: runtime.redis))
            let launcher = BatchLauncher(dataDirectory: runtime.configuration.dataDirectory, redis: runtime.redis)
            firer.launchBatch = { try await launcher.launch($0) }
            var options = Scheduler.Options()
            options.tick = .milliseconds(tickMs)
            options.lockTTL = .milliseconds(lockTtlMs)
            let clock: any SchedulerClock =
                clockRate.map { rate in
                    ScaledSchedulerClock(start: clockStart.flatMap { try? Date($0, strategy: .iso8601) } ?? Date(), rate: rate)
                } ?? SystemSchedulerClock()
            let logger = Logger(label: "drover.scheduler")
            let scheduler = Scheduler(redis: runtime.redis, store: store, firer: firer, clock: clock, options: options, logger: logger)
            note(
                "drover scheduler: \(options.token) watching deployments in \(runtime.configuration.databasePath.path)\(clockRate.map { " (simulated clock, \($0)x)" } ?? "")"
            )
            let group = ServiceGroup(
                services: [SchedulerService(scheduler: scheduler)]
                    + [observability.metricsService(observed, role: "scheduler")].compactMap { $0 },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            note("drover scheduler: \(options.token) stopped after \(scheduler.fires) fires")
        }
    }
}
