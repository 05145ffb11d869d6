import DroverCore
import DroverTesting
import Foundation
import Testing

@Suite("data directory")
struct DataDirectoryTests {
    @Test("the nearest .drover here or above is the store, as git finds .git; none found means ./.drover; DROVER_DATA_DIR wins")
    func located() throws {
        let root = scratchDirectory("datadir")
        defer { try? FileManager.default.removeItem(at: root) }
        let project = root.appendingPathComponent("course")
        let jobs = project.appendingPathComponent("Jobs/data")
        try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)

        let (fresh, freshOrigin) = DroverConfiguration.locateDataDirectory(from: jobs)
        #expect(freshOrigin == .new && fresh.path == jobs.appendingPathComponent(".drover").path)

        try FileManager.default.createDirectory(at: project.appendingPathComponent(".drover"), withIntermediateDirectories: true)
        let (found, origin) = DroverConfiguration.locateDataDirectory(from: jobs)
        #expect(origin == .found && found.path == project.appendingPathComponent(".drover").path)

        // A file named .drover is not a store: the search goes on past it.
        try Data().write(to: jobs.appendingPathComponent(".drover"))
        #expect(DroverConfiguration.locateDataDirectory(from: jobs).0.path == project.appendingPathComponent(".drover").path)

        let chosen = try DroverConfiguration.fromEnvironment(["DROVER_DATA_DIR": root.appendingPathComponent("elsewhere").path])
        #expect(chosen.dataDirectoryOrigin == .environment && chosen.dataDirectory.lastPathComponent == "elsewhere")
    }
}
