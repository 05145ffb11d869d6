import DroverCore
import DroverTesting
import Foundation
import Testing

/// Two hosts simulated on one machine: each has its own data directory and hands root, and they
/// share only Redis. Host a runs the batch (`drover run --workers 0`), host b the sandboxes
/// (`drover worker --queue jobs.NAME`). Nothing passes between them on disk: a job's per-item
/// files reach b, and its output file and collected files reach a, through the file store.
@Suite("a batch on two hosts", .serialized)
struct TwoHostJobRunTests {
    let directory = scratchDirectory("twohosts")

    /// Each session runs the submission's executable script and reports a digest of every file
    /// it was given, so a byte lost, changed or made unrunnable on the way shows in the report.
    static let playbook = """
        playbook:
          steps:
            - tool: bash
              input:
                command: >-
                  cd /workspace/submission &&
                  ./run.sh > /workspace/result.txt &&
                  printf '{"digest": "%s", "lines": %s, "ran": "%s"}'
                  "$(find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
                  "$(cat notes/*.txt | wc -l)" "$(./run.sh)" > /workspace/result.json
          final: "Checked the submission."
        """

    struct Report: Decodable {
        struct Item: Decodable, Equatable {
            let item_id: String
            let status: String
            let columns: [String: JSONValue]
        }
        let items: [Item]
    }

    func environment(_ host: String, redis: RedisServerFixture) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DROVER_DB"] { environment.removeValue(forKey: key) }
        environment["DROVER_REDIS_URL"] = redis.url.description
        environment["DROVER_DATA_DIR"] = directory.appendingPathComponent("\(host)/data").path
        environment["DROVER_HANDS_DIR"] = directory.appendingPathComponent("\(host)/hands").path
        return environment
    }

    /// Six submissions, each with text, every byte value, a nested folder and an executable script.
    func writeJob() throws -> (job: URL, script: URL) {
        let manager = FileManager.default
        try manager.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        for host in ["one", "a", "b"] {
            try manager.createDirectory(
                at: directory.appendingPathComponent(host), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        }
        for index in 1...6 {
            let submission = directory.appendingPathComponent("submissions/s\(index)")
            try manager.createDirectory(at: submission.appendingPathComponent("notes"), withIntermediateDirectories: true)
            try Data((0..<(index * 3)).map { "line \($0) of s\(index)\n" }.joined().utf8)
                .write(to: submission.appendingPathComponent("notes/a.txt"))
            try Data((0...255).map { UInt8($0) } + Array(repeating: UInt8(index), count: index * 1000))
                .write(to: submission.appendingPathComponent("blob.bin"))
            let script = submission.appendingPathComponent("run.sh")
            try Data("#!/bin/sh\necho \"bytes=$(wc -c < blob.bin)\"\n".utf8).write(to: script)
            try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        }
        let job = directory.appendingPathComponent("two-hosts.yaml")
        try Data(
            """
            name: two-hosts
            agent: {model: claude-sonnet-4-5}
            items:
              glob: submissions/*
            files:
              - {from: "{{path}}", to: submission}
            prompt: "Check the submission {{name}}"
            concurrency: 3
            timeout_seconds: 120
            output: {from: file, file: result.json, columns: [digest, lines, ran]}
            collect:
              - {from: result.txt, to: "{{name}}/result.txt"}
            \(Self.playbook)
            """.utf8
        ).write(to: job)
        let script = directory.appendingPathComponent("b/script.yaml")
        try Data(Self.playbook.utf8).write(to: script)
        return (job, script)
    }

    func sessionDirectories(_ host: String) -> [String] {
        let workspaces = directory.appendingPathComponent("\(host)/hands/workspaces")
        return ((try? FileManager.default.contentsOfDirectory(atPath: workspaces.path)) ?? []).filter { $0.hasPrefix("sesn_") }.sorted()
    }

    @Test("a batch with file inputs gives the same report on one host and on two; the runner's host never holds a workspace")
    func sameReportOnTwoHosts() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withRedisServer { redis in
            let (job, script) = try writeJob()

            let oneReport = directory.appendingPathComponent("one/report")
            let one = try await runProgramSeparately(
                droverBinary.path, ["run", job.path, "--report-dir", oneReport.path, "--batch-id", "batch_one_host"],
                environment: environment("one", redis: redis), timeout: .seconds(300))
            #expect(one.status == 0, "\(one.stdout)\n\(one.stderr)")

            // Host b: a worker on the batch's queue (the job's own batch: jobs.NAME), with the same
            // playbook as its scripted model.
            let workerOutput = directory.appendingPathComponent("b/worker.out").path
            let worker = try ChildProcess(
                executable: droverBinary.path,
                arguments: ["worker", "--queue", "jobs.two-hosts", "--model-script", script.path, "--concurrency", "3", "--drain-seconds", "1"],
                environment: environment("b", redis: redis), outputPath: workerOutput)
            defer { Task { await worker.kill() } }
            // Host a: the batch alone, with no worker of its own.
            let twoReport = directory.appendingPathComponent("a/report")
            let two = try await runProgramSeparately(
                droverBinary.path, ["run", job.path, "--report-dir", twoReport.path, "--workers", "0"],
                environment: environment("a", redis: redis), timeout: .seconds(300))
            let said = (try? String(contentsOfFile: workerOutput, encoding: .utf8)) ?? ""
            #expect(two.status == 0, "\(two.stdout)\n\(two.stderr)\nworker:\n\(said)")
            await worker.terminate(grace: .seconds(20))

            let first = try JSONDecoder().decode(Report.self, from: Data(contentsOf: oneReport.appendingPathComponent("report.json")))
            let second = try JSONDecoder().decode(Report.self, from: Data(contentsOf: twoReport.appendingPathComponent("report.json")))
            #expect(first.items.count == 6 && first.items.allSatisfy { $0.status == "succeeded" }, "\(first.items)")
            #expect(first.items.sorted { $0.item_id < $1.item_id } == second.items.sorted { $0.item_id < $1.item_id })
            // The files arrived whole and the script runnable: its line counts and sizes are the ones written.
            for item in first.items {
                let index = Int(item.item_id.dropFirst(1)) ?? 0
                #expect(item.columns["lines"] == .number(Double(index * 3)), "\(item)")
                #expect(item.columns["ran"] == .string("bytes=\(256 + index * 1000)"), "\(item)")
            }
            #expect(Set(first.items.compactMap { $0.columns["digest"]?.stringValue }).count == 6)
            // The collected files are the same bytes on both.
            for index in 1...6 {
                let path = "s\(index)/result.txt"
                let a = try Data(contentsOf: oneReport.appendingPathComponent(path))
                let b = try Data(contentsOf: twoReport.appendingPathComponent(path))
                #expect(a == b && a == Data("bytes=\(256 + index * 1000)\n".utf8), "\(path)")
            }
            // Every session of the two-host batch had its workspace on b, none on a.
            #expect(sessionDirectories("a").isEmpty, "\(sessionDirectories("a"))")
            #expect(sessionDirectories("b").count == 6, "\(sessionDirectories("b"))")
        }
    }
}
