import DroverCore
import DroverDatabase
import DroverRedis
import DroverTesting
import Foundation
import Testing

@testable import DroverSchedule

@Suite("drover scheduler and apply (processes)")
struct SchedulerProcessTests {
    /// The environment a `drover` child process gets: the test's Redis and SQLite file.
    func environment(redis: RedisURL, database: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["DROVER_REDIS_URL"] = redis.description
        environment["DROVER_DB"] = database
        environment["DROVER_DATA_DIR"] = URL(fileURLWithPath: database).deletingLastPathComponent().path
        return environment
    }

    @Test("three drover scheduler processes on a fast simulated clock: kill -9 the leader, each occurrence still fires once")
    func threeProcesses() async throws {
        try await withRedisServer { server in
            let database = temporaryDatabasePath()
            let directory = URL(fileURLWithPath: database).deletingLastPathComponent()
            defer { try? FileManager.default.removeItem(at: directory) }
            let store = DeploymentStore(database: try MirrorDatabase(path: database))
            _ = try await store.apply([try SchedulerRig.file()])
            let environment = environment(redis: server.url, database: database)

            // 120 simulated seconds per real second: a cron minute every half second.
            var children: [(ChildProcess, String)] = []
            for index in 0..<3 {
                let log = directory.appendingPathComponent("scheduler-\(index).log").path
                let child = try ChildProcess(
                    executable: droverBinary.path,
                    arguments: ["scheduler", "--clock-rate", "120", "--tick-ms", "50", "--lock-ttl-ms", "700"],
                    environment: environment, outputPath: log, errorPath: nil)
                children.append((child, log))
            }
            let redis = try await server.client(poolSize: 1)
            defer { redis.close() }
            let deployment = try await store.find("every-minute").id
            func runCount() async throws -> Int {
                try await store.database.deploymentRunCounts(deploymentID: deployment).count
            }
            let deadline = ContinuousClock.now + .seconds(20)
            while try await runCount() < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }

            let leaderValue = try await redis.send(["GET", "drover:{sched}:leader"]).string ?? ""
            let leaderToken = String(leaderValue.split(separator: "|").first ?? "")
            let leaderIndex = try #require(
                children.firstIndex { (try? String(contentsOfFile: $0.1, encoding: .utf8))?.contains(leaderToken) == true })
            children[leaderIndex].0.signal(SIGKILL)
            let before = try await runCount()
            while try await runCount() < before + 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            let newLeader = try await redis.send(["GET", "drover:{sched}:leader"]).string ?? ""
            for (index, child) in children.enumerated() where index != leaderIndex {
                await child.0.terminate(grace: .seconds(5))
            }
            await children[leaderIndex].0.terminate(grace: .seconds(1))

            let counts = try await store.database.deploymentRunCounts(deploymentID: deployment)
            #expect(counts.count >= before + 3, "runs: \(counts.count), before the kill: \(before)")
            #expect(counts.values.allSatisfy { $0 == 1 }, "\(counts)")
            #expect(!newLeader.hasPrefix(leaderToken + "|"), "the killed leader still leads")
            // The stretch the takeover took (and any tick a loaded machine delayed past a simulated
            // minute) fires once, for its latest minute: gaps, never repeats. The in-process
            // tests pin that exactly; here the point is real processes and a real kill -9.
            let logs = children.map { (try? String(contentsOfFile: $0.1, encoding: .utf8)) ?? "" }
            #expect(logs.filter { $0.contains("leads with epoch") }.count >= 2, "\(logs)")
        }
    }

    @Test("drover apply prints the difference, and a bad file fails with file, line and fix")
    func applyCLI() async throws {
        let database = temporaryDatabasePath()
        let directory = URL(fileURLWithPath: database).deletingLastPathComponent()
        defer { try? FileManager.default.removeItem(at: directory) }
        let schedules = directory.appendingPathComponent("Schedules")
        try FileManager.default.createDirectory(at: schedules, withIntermediateDirectories: true)
        for name in ["nightly-research.yaml", "weekly-wiki-digest.yaml"] {
            try FileManager.default.copyItem(at: projectRoot.appendingPathComponent("Schedules/\(name)"), to: schedules.appendingPathComponent(name))
        }
        var environment = ProcessInfo.processInfo.environment
        environment["DROVER_DB"] = database
        environment["DROVER_DATA_DIR"] = directory.path
        func drover(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await runProgramSeparately(droverBinary.path, arguments, environment: environment)
        }
        let dry = try await drover("apply", schedules.path, "--dry-run")
        #expect(dry.stdout.contains("+ nightly-research  (would be created)"), "\(dry)")
        #expect(try await drover("deployments", "list").stdout.split(separator: "\n").count == 1)
        let applied = try await drover("apply", schedules.path)
        #expect(applied.status == 0)
        #expect(applied.stdout.contains("2 created, 0 updated, 0 unchanged, 0 archived"), "\(applied)")
        let list = try await drover("deployments", "list")
        #expect(list.stdout.contains("weekly-wiki-digest  paused"), "\(list.stdout)")
        #expect(try await drover("deployments", "unpause", "weekly-wiki-digest").stdout.contains("active"))
        let show = try await drover("deployments", "show", "weekly-wiki-digest")
        #expect(show.stdout.contains("\"upcoming_runs_at\""))

        try FileManager.default.removeItem(at: schedules.appendingPathComponent("weekly-wiki-digest.yaml"))
        let text = try String(contentsOf: schedules.appendingPathComponent("nightly-research.yaml"), encoding: .utf8)
        try text.replacingOccurrences(of: "timezone: Europe/Berlin", with: "timezone: Europe/Nowhere")
            .write(to: schedules.appendingPathComponent("nightly-research.yaml"), atomically: true, encoding: .utf8)
        let bad = try await drover("apply", schedules.path)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("nightly-research.yaml:22: schedule.timezone: 'Europe/Nowhere' is not an IANA timezone. Fix:"), "\(bad.stderr)")
        #expect(try await drover("deployments", "list").stdout.contains("weekly-wiki-digest"), "a failed apply changed nothing")

        try text.write(to: schedules.appendingPathComponent("nightly-research.yaml"), atomically: true, encoding: .utf8)
        let removed = try await drover("apply", schedules.path)
        #expect(removed.stdout.contains("- weekly-wiki-digest  (archived)"), "\(removed.stdout)")
        #expect(removed.stdout.contains("= nightly-research  (unchanged)"))
        let missing = try await drover("deployments", "pause", "weekly-wiki-digest")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("not a deployment"))
    }
}
