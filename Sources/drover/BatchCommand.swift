import ArgumentParser
import DroverCore
import DroverDatabase
import DroverJobs
import DroverQueue
import DroverRuntime
import Foundation

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Batches started by `drover run` or a schedule: list, show, resume, cancel, delete.",
        subcommands: [List.self, Show.self, Resume.self, Cancel.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every batch, most recently active first.")
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await withRuntime(announce: false) { runtime in
                let rows = try await runtime.database().batches()
                if json {
                    print(try encodeJSON(rows.map { JSONValue.parseOrString($0.resource) }))
                    return
                }
                guard !rows.isEmpty else {
                    print("no batches yet: start one with `drover run Jobs/NAME.yaml`")
                    return
                }
                printTable(
                    header: ["BATCH", "JOB", "STATUS", "ITEMS", "COUNTS", "UPDATED"],
                    rows: rows.map { row in
                        let resource = (try? JSONValue.parse(row.resource))?.objectValue ?? [:]
                        let counts =
                            resource["counts"]?.objectValue?.sorted { $0.key < $1.key }
                            .map { "\(JobsFormatting.number($0.value)) \($0.key)" }.joined(separator: ", ") ?? ""
                        return [row.id, row.name, row.status, JobsFormatting.number(resource["items"]), counts, row.updatedAt ?? row.createdAt]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A batch and every item's outcome, as JSON.")
        @Argument(help: "The batch id (see `drover batch list`).") var batch: String

        func run() async throws {
            try await withRuntime(announce: false) { runtime in
                let database = try runtime.database()
                let row = try await database.requireBatch(batch)
                let resource = JSONValue.parseOrString(row.resource)
                // Items are keyed by content, so an edited submission leaves its old row behind:
                // `current` says which rows are items of the job as it was last run.
                let current = resource.objectValue?["current_item_keys"]?.arrayValue.map { Set($0.compactMap(\.stringValue)) }
                let items = try await database.batchItems(batch).map { item -> JSONValue in
                    var fields = JSONValue.parseOrString(item.result ?? "{}").objectValue ?? [:]
                    fields["current"] = current.map { .bool($0.contains(item.itemKey)) } ?? .null
                    return .object(fields)
                }
                print(try encodeJSON(JSONValue.object(["batch": resource, "items": .array(items)])))
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a batch's job file again: finished items are kept, the rest run.",
            discussion: "The same as `drover run` on the batch's job file."
        )
        @Argument(help: "The batch id.") var batch: String
        @Flag(help: "Also redo items that finished as failed or timed out.") var retryFailed = false

        func run() async throws {
            let row = try await withRuntime(announce: false) { runtime in
                let row = try await runtime.database().requireBatch(batch)
                return row
            }
            // The batch as it was: a scheduled occurrence's keeps its own id and report folder.
            let reportDir = JSONValue.parseOrString(row.resource).objectValue?["report_dir"]?.stringValue
            let code = try await JobRun(jobPath: row.jobFile, retryFailed: retryFailed, reportDir: reportDir, batchId: row.id).execute()
            if code != 0 { throw ExitCode(code) }
        }
    }
}

extension BatchCommand {
    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a batch: its running items' sessions end, and every unfinished item is cancelled.",
            discussion: """
                A run of the batch (`drover run` or a scheduled one) stops within a second, ends the
                sessions of the items it was running, and writes its report. With no run, the
                unfinished items are cancelled here. Cancelled items count as finished: a later run
                redoes them only with --retry-failed or --item.
                """)
        @Argument(help: "The batch id (see `drover batch list`).") var batch: String

        func run() async throws {
            try await withRuntime(announce: false) { runtime in
                let database = try runtime.database()
                _ = try await database.requireBatch(batch)
                try await BatchCancel.request(redis: runtime.redis, batchId: batch)
                if try await BatchLock.isHeld(redis: runtime.redis, batchId: batch) {
                    // The run sees the flag within a second and records the cancel itself.
                    let deadline = ContinuousClock.now + .seconds(60)
                    while ContinuousClock.now < deadline, try await database.batch(batch)?.status != "cancelled" {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                    let status = try await database.batch(batch)?.status ?? "gone"
                    print(status == "cancelled" ? "cancelled \(batch): its run stopped" : "asked the run of \(batch) to stop; it is \(status) so far")
                    return
                }
                let cancelled = try await BatchCancel.cancelUnfinished(batchId: batch, log: try runtime.sessionLog, database: database)
                try await BatchCancel.clear(redis: runtime.redis, batchId: batch)
                print("cancelled \(batch): \(cancelled) unfinished items (no run was active)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget a batch that is not running: its items, and its queue's tasks. Sessions and their logs stay.")
        @Argument(help: "The batch id (see `drover batch list`).") var batch: String

        func run() async throws {
            try await withRuntime(announce: false) { runtime in
                let database = try runtime.database()
                let row = try await database.requireBatch(batch)
                if try await BatchLock.isHeld(redis: runtime.redis, batchId: batch) {
                    throw ValidationError("batch \(batch) is running. Fix: `drover batch cancel \(batch)` first")
                }
                let resource = JSONValue.parseOrString(row.resource).objectValue ?? [:]
                let queue = try QueueName(
                    resource["queue"]?.stringValue ?? BatchPlan.queueName(batchId: batch, jobName: resource["name"]?.stringValue ?? row.name))
                // Nothing runs from it (the batch's run is gone), so its leased tasks go too.
                let purged = try await TaskQueue(redis: runtime.redis).purge(queue, includeLeased: true)
                try await database.deleteBatch(batch)
                try await BatchCancel.clear(redis: runtime.redis, batchId: batch)
                let tasks = purged.ready + purged.delayed + purged.dead + purged.leased
                print("deleted \(batch): its items, and \(tasks) tasks of queue \(queue); the sessions and their logs are kept")
            }
        }
    }
}

extension MirrorDatabase {
    /// The batch with this id, or the error that says where the ids are.
    func requireBatch(_ id: String) async throws -> BatchRow {
        guard let row = try await batch(id) else { throw ValidationError("no batch \(id). Fix: see `drover batch list` for the ids") }
        return row
    }
}

enum JobsFormatting {
    static func number(_ value: JSONValue?) -> String {
        if case .number(let number)? = value { return Int64(exactly: number).map(String.init) ?? String(format: "%.1f", number) }
        return "-"
    }
}

extension JSONValue {
    /// Stored resources are JSON; show them as such, or as text if something else got in.
    static func parseOrString(_ text: String) -> JSONValue {
        (try? JSONValue.parse(text)) ?? .string(text)
    }
}
