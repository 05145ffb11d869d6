import DroverCore
import DroverDatabase
import DroverJobs
import DroverTesting
import Foundation
import Testing

@Suite("drover apply Jobs/")
struct JobCatalogTests {
    let directory = scratchDirectory("catalog")

    func write(_ name: String, _ text: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: directory.appendingPathComponent(name))
    }

    static func job(_ name: String, concurrency: Int = 2) -> String {
        "name: \(name)\nagent: {model: m}\nitems: {list: [a]}\nprompt: hi\nconcurrency: \(concurrency)\n"
    }

    @Test("apply creates, then reports unchanged, updated and removed jobs; a bad file changes nothing")
    func applyDifferences() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try MirrorDatabase(path: temporaryDatabasePath())
        try write("one.yaml", Self.job("one"))
        try write("two.yaml", Self.job("two"))
        try write("README.md", "not a job")
        let first = try await JobCatalog.apply(directory: directory, database: database, dryRun: false)
        #expect(first.map(\.description).allSatisfy { $0.hasPrefix("+ job") })
        #expect(first.count == 2)

        try write("two.yaml", Self.job("two", concurrency: 8))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("one.yaml"))
        try write("three.yaml", Self.job("three"))
        let dry = try await JobCatalog.apply(directory: directory, database: database, dryRun: true)
        #expect(dry.contains(.updated(name: "two", file: JobCatalogTests.relative(directory.appendingPathComponent("two.yaml")))))
        #expect(dry.contains(.removed(name: "one")))
        #expect(dry.contains { if case .created(let name, _) = $0 { name == "three" } else { false } })
        // A dry run stores nothing: the same differences again.
        #expect(try await JobCatalog.apply(directory: directory, database: database, dryRun: true) == dry)
        _ = try await JobCatalog.apply(directory: directory, database: database, dryRun: false)
        let again = try await JobCatalog.apply(directory: directory, database: database, dryRun: false)
        #expect(Set(again) == [.unchanged(name: "two"), .unchanged(name: "three")])

        try write("broken.yaml", "name: broken\nagent: {model: m}\nitems: {list: [a]}\n")
        try write("two.yaml", Self.job("two", concurrency: 9))
        await #expect(throws: JobCatalog.Problems.self) { try await JobCatalog.apply(directory: directory, database: database, dryRun: false) }
        do {
            _ = try await JobCatalog.apply(directory: directory, database: database, dryRun: false)
        } catch {
            #expect("\(error)".contains("broken.yaml"))
            #expect("\(error)".contains("prompt: is missing"))
        }
        // A placeholder that names no item field is caught by apply too, dry run or not.
        try write("broken.yaml", "name: broken\nagent: {model: m}\nitems: {list: [a]}\nprompt: 'Grade {{studnet}}'\n")
        do {
            _ = try await JobCatalog.apply(directory: directory, database: database, dryRun: true)
            Issue.record("a placeholder naming no field passed the dry run")
        } catch {
            #expect("\(error)".contains("{{studnet}} names no field"), "\(error)")
        }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("broken.yaml"))
        // two's change was not stored while broken.yaml blocked the apply.
        let after = try await JobCatalog.apply(directory: directory, database: database, dryRun: true)
        #expect(after.contains { if case .updated(let name, _) = $0 { name == "two" } else { false } })
    }

    static func relative(_ url: URL) -> String {
        let current = FileManager.default.currentDirectoryPath + "/"
        return url.path.hasPrefix(current) ? String(url.path.dropFirst(current.count)) : url.path
    }
}
