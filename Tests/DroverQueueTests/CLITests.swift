import DroverCore
import DroverQueue
import DroverTesting
import Foundation
import Testing

/// Runs the built `drover` binary, which sits beside the test bundle.
struct CLI {
    let dataDirectory: URL

    static var binary: URL { droverBinary }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    func run(_ arguments: String..., environment extra: [String: String] = [:]) async throws -> Result {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "DROVER_REDIS_URL")
        environment["DROVER_DATA_DIR"] = dataDirectory.path
        environment.merge(extra) { $1 }
        let result = try await runProgramSeparately(Self.binary.path, arguments, environment: environment)
        return Result(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }
}

@Suite("drover CLI")
struct CLITests {
    let cli = CLI(
        dataDirectory: scratchDirectory("cli"))

    @Test("drover --help and the README name every environment variable the sources and scripts read")
    func environmentVariablesDocumented() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var read: Set<String> = []
        for directory in ["Sources", "scripts"] {
            let walker = FileManager.default.enumerator(at: root.appendingPathComponent(directory), includingPropertiesForKeys: nil)
            while let file = walker?.nextObject() as? URL {
                guard let text = try? String(contentsOf: file, encoding: .utf8) else { continue }
                for match in text.matches(of: /\b(?:DROVER|ANTHROPIC)_[A-Z][A-Z0-9_]*/) {
                    let name = String(match.output)
                    // C include guards, and prefixes a name is built from.
                    if name.hasSuffix("_H") || name.hasSuffix("_") { continue }
                    read.insert(name)
                }
            }
        }
        #expect(read.count >= 20 && read.contains("ANTHROPIC_BASE_URL"), "\(read.sorted())")
        let listed = Set(EnvironmentVariables.all.map(\.name))
        #expect(read.subtracting(listed).isEmpty, "read but not in EnvironmentVariables.all: \(read.subtracting(listed).sorted())")
        #expect(listed.subtracting(read).isEmpty, "listed but read nowhere: \(listed.subtracting(read).sorted())")
        let help = try await cli.run("--help")
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for name in listed.sorted() {
            #expect(help.stdout.contains("  \(name)\n"), "drover --help does not list \(name)")
            #expect(readme.contains("`\(name)`"), "the README does not name \(name)")
        }
    }

    @Test("enqueue and stats on the embedded server, which stops with the command and keeps the data")
    func enqueueAndStats() async throws {
        defer { try? FileManager.default.removeItem(at: cli.dataDirectory) }
        let enqueued = try await cli.run("queue", "enqueue", "grading", "--payload", #"{"student":"ana"}"#, "--priority", "7")
        #expect(enqueued.status == 0, "\(enqueued.stderr)")
        #expect(enqueued.stdout.hasPrefix("task_"))
        #expect(enqueued.stderr.contains("embedded redis-server"))
        #expect(!FileManager.default.fileExists(atPath: cli.dataDirectory.appendingPathComponent("redis.sock").path))

        let stats = try await cli.run("queue", "stats", "--json")
        #expect(stats.status == 0, "\(stats.stderr)")
        let rows = try JSONDecoder().decode([QueueStats].self, from: Data(stats.stdout.utf8))
        #expect(rows.map(\.queue) == ["grading"])
        #expect(rows.first?.ready == 1)
        #expect(rows.first?.totals.enqueued == 1)
    }

    @Test("bad input exits non-zero with the field and the fix, and loses nothing")
    func badInput() async throws {
        defer { try? FileManager.default.removeItem(at: cli.dataDirectory) }
        #expect(try await cli.run("queue", "enqueue", "q", "--payload", "{}").status == 0)
        let notJSON = try await cli.run("queue", "enqueue", "q", "--payload", "{oops")
        #expect(notJSON.status == 1)
        #expect(notJSON.stderr.contains("payload"))
        #expect(notJSON.stderr.contains("Fix:"))
        let badName = try await cli.run("queue", "enqueue", "bad name", "--payload", "{}")
        #expect(badName.status == 1)
        #expect(badName.stderr.contains("queue"))
        let badURL = try await cli.run("queue", "stats", environment: ["DROVER_REDIS_URL": "redis://:pw@localhost:notaport"])
        #expect(badURL.status == 1)
        #expect(badURL.stderr.contains("DROVER_REDIS_URL") || badURL.stderr.contains("invalid Redis URL"))
        #expect(!badURL.stderr.contains(":pw@"))
        let stats = try await cli.run("queue", "stats", "q", "--json")
        #expect(try JSONDecoder().decode([QueueStats].self, from: Data(stats.stdout.utf8)).first?.ready == 1)
    }
}
