import ArgumentParser
import DroverCore
import DroverJobs
import DroverRuntime
import Foundation

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Batches started by `drover run`: list, show, resume.",
        subcommands: [List.self, Show.self, Resume.self]
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
                guard let row = try await database.batch(batch) else {
                    throw ValidationError("no batch \(batch). Fix: see `drover batch list` for the ids")
                }
                let items = try await database.batchItems(batch).map { JSONValue.parseOrString($0.result ?? "{}") }
                print(try encodeJSON(JSONValue.object(["batch": JSONValue.parseOrString(row.resource), "items": .array(items)])))
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
            let jobFile: String = try await withRuntime(announce: false) { runtime in
                guard let row = try await runtime.database().batch(batch) else {
                    throw ValidationError("no batch \(batch). Fix: see `drover batch list` for the ids")
                }
                return row.jobFile
            }
            let code = try await JobRun(jobPath: jobFile, retryFailed: retryFailed).execute()
            if code != 0 { throw ExitCode(code) }
        }
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
