import DroverCore
import DroverDatabase
import DroverQueue
import DroverRedis
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

/// `drover run` on a real Redis Cluster (3 masters, 3 replicas), through
/// `DROVER_REDIS_URL=redis+cluster://...`, with a master killed by SIGKILL mid-batch.
@Suite("drover run on a real Redis Cluster", .serialized)
struct ClusterJobRunTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    let directory = scratchDirectory("clusterrun")

    func environment(_ cluster: RedisClusterFixture) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"] { environment.removeValue(forKey: key) }
        environment["DROVER_REDIS_URL"] = cluster.url.description
        environment["DROVER_DATA_DIR"] = directory.appendingPathComponent("data").path
        environment["DROVER_DB"] = directory.appendingPathComponent("data/drover.db").path
        return environment
    }

    struct Report: Decodable {
        struct Item: Decodable {
            let item_id: String
            let status: String
            let columns: [String: JSONValue]
            let sessions: [String]
        }
        let items: [Item]
    }

    @Test("the main job on a cluster grades every submission as on one server")
    func mainJobOnACluster() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withRedisCluster { cluster in
            let reportDirectory = directory.appendingPathComponent("report")
            let job = Self.repository.appendingPathComponent("Jobs/grade-assignments.yaml").path
            var environment = environment(cluster)
            environment["DROVER_GRADING_SECRET"] = "cluster-secret"
            let run = try await runProgramSeparately(
                droverBinary.path, ["run", job, "--report-dir", reportDirectory.path], environment: environment, timeout: .seconds(300))
            #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
            let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: reportDirectory.appendingPathComponent("report.json")))
            var scores: [String: Int] = [:]
            for item in report.items {
                #expect(item.status == "succeeded", "\(item.item_id)")
                if case .number(let score)? = item.columns["score"] { scores[item.item_id] = Int(score) }
            }
            #expect(scores == JobRunTests.expectedScores)
        }
    }

    @Test(
        "a master killed with SIGKILL mid-batch on a partitioned queue: the batch finishes, no turn runs twice under one epoch, no tool runs twice, SQLite matches Redis"
    )
    func batchThroughAFailover() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withRedisCluster { cluster in
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let job = directory.appendingPathComponent("through-failover.yaml")
            try Data(
                """
                name: through-failover
                agent: {model: claude-sonnet-4-5}
                items:
                  list: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]
                prompt: "Process item {{value}}"
                concurrency: 4
                timeout_seconds: 120
                output: {columns: [ok]}
                playbook:
                  ttft_ms: 150
                  steps:
                    - {tool: bash, input: {command: "sleep 0.2; echo first"}}
                    - {tool: bash, input: {command: "sleep 0.2; echo second"}}
                  final: '{"ok": true}'
                """.utf8
            ).write(to: job)
            // The job's queue in three partitions, so its turns spread over the masters and the
            // killed one takes a partition with it.
            let environment = self.environment(cluster)
            let said = try await splitQueue(environment)
            let split = said.contains("jobs.through-failover: 3 partitions")
            #expect(split, "\(said)")
            let reportDirectory = directory.appendingPathComponent("report")
            let output = directory.appendingPathComponent("run.out").path
            let child = try ChildProcess(
                executable: droverBinary.path, arguments: ["run", job.path, "--report-dir", reportDirectory.path],
                environment: environment, outputPath: output)
            defer { Task { await child.kill() } }
            // Kill the master of the batch's turn queue once a few items are through.
            // `drover run` names a job's queue jobs.NAME.
            let slot = RedisHashSlot.of("drover:{q:jobs.through-failover}:ready")
            let victim = try #require(try await cluster.masterPort(ofSlot: slot))
            let text = { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
            let started = try await eventually(within: .seconds(120), polling: .milliseconds(20)) {
                text().split(separator: "\n").filter { $0.hasPrefix("succeeded") }.count >= 3 || !child.isRunning
            }
            #expect(started && child.isRunning, "the run ended before the kill:\n\(text())")
            await cluster.kill(port: victim)
            let succeededBeforeKill = text().split(separator: "\n").filter { $0.hasPrefix("succeeded") }.count
            #expect(succeededBeforeKill < 16, "every item was through before the kill")

            let finished = try await eventually(within: .seconds(300), polling: .milliseconds(100)) { !child.isRunning }
            #expect(finished, "the run did not finish after the failover:\n\(text())")
            #expect(child.exitCode == 0, "\(text())")
            if ProcessInfo.processInfo.environment["DROVER_TEST_SHOW"] != nil { print(text()) }
            let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: reportDirectory.appendingPathComponent("report.json")))
            #expect(report.items.count == 16)
            #expect(report.items.allSatisfy { $0.status == "succeeded" && $0.columns["ok"] == .bool(true) }, "\(text())")
            #expect(try await cluster.masterPort(ofSlot: slot) != victim, "no replica took over")

            // The log, in Redis and in SQLite, holds each turn once per epoch and each tool once.
            let client = try await cluster.client()
            defer { client.close() }
            // Every partition of the job's queue carried some of its turns.
            let queue = try QueueName("jobs.through-failover")
            for partition in 0..<3 {
                let enqueued = try await TaskQueue(redis: client).stats(queue.partition(partition)).totals.enqueued
                #expect(enqueued > 0, "partition \(partition) took no turn")
            }
            let database = try MirrorDatabase(path: directory.appendingPathComponent("data/drover.db").path)
            let log = SessionLog(redis: client, database: database)
            for item in report.items {
                for id in item.sessions {
                    let session = try SessionID(id)
                    let logged = try await log.read(session, limit: 10_000)
                    #expect(logged.map(\.seq) == Array(1...Int64(logged.count)), "\(id): a gap or repeat in the log")
                    let mirrored = try await eventually(within: .seconds(60)) {
                        try await database.eventCount(session: id) == logged.count
                    }
                    #expect(mirrored, "\(id): SQLite does not hold the log")
                    let rows = try await database.events(session: id, afterSeq: 0, limit: 10_000)
                    #expect(rows.map(\.json) == logged.map(\.json), "\(id): SQLite and Redis disagree")
                    let epochs = try await database.epochs(session: id).filter { $0 > 0 }
                    #expect(epochs == epochs.sorted(), "\(id): turns of different epochs interleave: \(epochs)")
                    var runningPerEpoch: [Int64: Int] = [:]
                    var toolUses: [String: Int] = [:]
                    var toolResults: [String: Int] = [:]
                    for (event, epoch) in zip(rows, try await database.epochs(session: id)) {
                        let json = JSONValue.decode(event.json).objectValue ?? [:]
                        switch event.type {
                        case "session.status_running": runningPerEpoch[epoch, default: 0] += 1
                        case "agent.tool_use": toolUses[json["id"]?.stringValue ?? "", default: 0] += 1
                        case "agent.tool_result": toolResults[json["tool_use_id"]?.stringValue ?? "", default: 0] += 1
                        default: break
                        }
                    }
                    #expect(runningPerEpoch.values.allSatisfy { $0 == 1 }, "\(id): a turn ran twice under one epoch: \(runningPerEpoch)")
                    #expect(toolUses.values.allSatisfy { $0 == 1 } && toolResults.values.allSatisfy { $0 == 1 }, "\(id): a tool ran twice")
                    #expect(toolUses.count == 2 && Set(toolUses.keys) == Set(toolResults.keys), "\(id): \(toolUses) \(toolResults)")
                }
            }
        }
    }

    /// `drover queue partition` on the job's queue; what it printed, or its error.
    private func splitQueue(_ environment: [String: String]) async throws -> String {
        let run = try await runProgramSeparately(
            droverBinary.path, ["queue", "partition", "jobs.through-failover", "--partitions", "3"], environment: environment)
        return run.status == 0 ? run.stdout : "exit \(run.status): \(run.stderr)"
    }
}
