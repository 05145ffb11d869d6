import Crypto
import DroverCore
import DroverDatabase
import Foundation

/// `drover apply Jobs/`: checks every job file and makes the stored catalog match the folder,
/// all or nothing: one bad file changes nothing.
public enum JobCatalog {
    public enum Change: Sendable, Hashable, CustomStringConvertible {
        case created(name: String, file: String)
        case updated(name: String, file: String)
        case unchanged(name: String)
        case removed(name: String)

        public var description: String {
            switch self {
            case .created(let name, let file): "+ job \(name) (\(file))"
            case .updated(let name, let file): "~ job \(name) (\(file) changed)"
            case .unchanged(let name): "= job \(name)"
            case .removed(let name): "- job \(name) (its file is gone)"
            }
        }
    }

    public struct Problems: Error, CustomStringConvertible, Sendable {
        public let errors: [String]
        public var description: String { errors.joined(separator: "\n") }
    }

    /// The job files in `directory`: every `*.yaml` / `*.yml` at its top level.
    public static func files(in directory: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { ["yaml", "yml"].contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    public static func apply(directory: URL, database: MirrorDatabase, dryRun: Bool) async throws -> [Change] {
        var specs: [(JobSpec, String, String)] = []
        var errors: [String] = []
        var seen: [String: String] = [:]
        for file in try files(in: directory) {
            let relative = relativeToCurrentDirectory(file)
            do {
                let text = try String(contentsOf: file, encoding: .utf8)
                let spec = try JobFileParser.parse(
                    text, file: relative, workingDirectory: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
                if let other = seen[spec.name] {
                    errors.append("\(relative): name: `\(spec.name)` is also the name of \(other). Fix: give each job its own name")
                    continue
                }
                seen[spec.name] = relative
                // The items too, as `drover run` checks them before it starts: globs, CSVs and
                // placeholders (with a stored agent, that waits for the run).
                if case .inline(let agent) = spec.agent { _ = try JobItems.expand(spec, agentJSON: agent.compactJSON) }
                let hash = SHA256.hash(data: Data(text.utf8)).lowercaseHex
                specs.append((spec, relative, hash))
            } catch {
                errors.append("\(error)")
            }
        }
        guard errors.isEmpty else { throw Problems(errors: errors) }
        let stored = Dictionary(uniqueKeysWithValues: try await database.jobs().map { ($0.name, $0) })
        var changes: [Change] = []
        var upserts: [MirrorDatabase.JobRow] = []
        for (spec, file, hash) in specs {
            let resource = JSONValue.object([
                "type": .string("job"), "name": .string(spec.name), "file": .string(file),
                "description": spec.description.map(JSONValue.string) ?? .null,
                "concurrency": .number(Double(spec.concurrency)), "timeout_seconds": .number(spec.timeoutSeconds),
                "batch_id": .string(BatchPlan.batchId(forJob: spec.name)),
                // Absolute, for a schedule's `job: NAME` applied from another directory.
                "path": .string(spec.file.path),
            ]).compactJSON
            let row = MirrorDatabase.JobRow(name: spec.name, file: file, contentHash: hash, resource: resource)
            if let old = stored[spec.name], old.removedAt == nil {
                if old.contentHash == hash && old.file == file {
                    changes.append(.unchanged(name: spec.name))
                    continue
                }
                changes.append(.updated(name: spec.name, file: file))
            } else {
                changes.append(.created(name: spec.name, file: file))
            }
            upserts.append(row)
        }
        let removals = stored.values.filter { $0.removedAt == nil && seen[$0.name] == nil }.map(\.name).sorted()
        changes += removals.map { .removed(name: $0) }
        if !dryRun { try await database.applyJobs(upserts: upserts, removals: removals) }
        return changes
    }

    static func relativeToCurrentDirectory(_ url: URL) -> String {
        let current = FileManager.default.currentDirectoryPath + "/"
        return url.path.hasPrefix(current) ? String(url.path.dropFirst(current.count)) : url.path
    }
}
