import ArgumentParser
import DroverCore
import DroverJobs
import DroverRuntime
import Foundation

/// `drover apply Jobs/`: the job-catalog half of `apply`.
enum JobCatalogCommand {
    /// A folder of job files: its YAML files describe `items:` rather than a `schedule:`.
    static func holdsJobs(_ directory: String) -> Bool {
        guard let files = try? JobCatalog.files(in: URL(fileURLWithPath: directory)), !files.isEmpty else { return false }
        return files.contains { file in
            ((try? String(contentsOf: file, encoding: .utf8)) ?? "").split(separator: "\n").contains { $0.hasPrefix("items:") }
        }
    }

    static func apply(directory: String, dryRun: Bool, json: Bool) async throws {
        try await withRuntime(announce: false) { runtime in
            let changes: [JobCatalog.Change]
            do {
                changes = try await JobCatalog.apply(directory: URL(fileURLWithPath: directory), database: try runtime.database(), dryRun: dryRun)
            } catch let problems as JobCatalog.Problems {
                note(problems.errors.map { "drover: error: \($0)" }.joined(separator: "\n"))
                note("drover: nothing was changed")
                throw ExitCode(1)
            }
            if json {
                print(try encodeJSON(JSONValue.array(changes.map { .string($0.description) })))
                return
            }
            for change in changes { print(change.description) }
            func count(_ test: (JobCatalog.Change) -> Bool) -> Int { changes.filter(test).count }
            let created = count { if case .created = $0 { true } else { false } }
            let updated = count { if case .updated = $0 { true } else { false } }
            let unchanged = count { if case .unchanged = $0 { true } else { false } }
            let removed = count { if case .removed = $0 { true } else { false } }
            print("\(dryRun ? "dry run: " : "")\(created) created, \(updated) updated, \(unchanged) unchanged, \(removed) removed")
        }
    }
}
