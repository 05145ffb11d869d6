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

    @Test("a schedule with job: starts one batch per occurrence (a drover run of its own); an occurrence while it runs is skipped and recorded")
    func scheduledBatches() async throws {
        try await withRedisServer { server in
            let database = temporaryDatabasePath()
            let directory = URL(fileURLWithPath: database).deletingLastPathComponent()
            defer { try? FileManager.default.removeItem(at: directory) }
            let jobs = directory.appendingPathComponent("Jobs")
            let schedules = directory.appendingPathComponent("Schedules")
            for folder in [jobs, schedules] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
            let reports = directory.appendingPathComponent("reports/slow")
            try Data(
                """
                name: slow
                agent: {model: claude-sonnet-4-5}
                items: {list: [a, b]}
                prompt: "Item {{value}}"
                concurrency: 2
                output: {columns: [ok]}
                report: {dir: "\(reports.path)"}
                playbook:
                  steps: [{tool: bash, input: {command: "sleep 2; echo true"}}]
                  final: '{"ok": {{result_1}}}'
                """.utf8
            ).write(to: jobs.appendingPathComponent("slow.yaml"))
            try Data(
                """
                name: slow-every-minute
                job: ../Jobs/slow.yaml
                schedule: {type: cron, expression: "* * * * *", timezone: UTC}
                """.utf8
            ).write(to: schedules.appendingPathComponent("slow.yaml"))
            let environment = environment(redis: server.url, database: database)
            let applied = try await runProgramSeparately(droverBinary.path, ["apply", schedules.path], environment: environment)
            #expect(applied.status == 0 && applied.stdout.contains("+ slow-every-minute  (created)"), "\(applied)")

            // A simulated minute every 2 s; each batch takes longer than that (its items sleep 2 s).
            let log = directory.appendingPathComponent("scheduler.log").path
            let scheduler = try ChildProcess(
                executable: droverBinary.path, arguments: ["scheduler", "--clock-rate", "30", "--tick-ms", "200", "--lock-ttl-ms", "2000"],
                environment: environment, outputPath: log)
            let store = DeploymentStore(database: try MirrorDatabase(path: database))
            var runs: [[String: JSONValue]] = []
            func batches() -> [String] { runs.compactMap { $0["batch_id"]?.stringValue } }
            func skipped() -> [[String: JSONValue]] { runs.filter { $0["error"]?.objectValue?["type"] == .string("overlap_skipped") } }
            // Finished: recorded as completed, and its report written (which comes just after).
            func finished(_ batch: String) async throws -> Bool {
                try await store.database.batch(batch)?.status == "completed"
                    && FileManager.default.fileExists(atPath: reports.appendingPathComponent("\(batch)/report.json").path)
            }
            let deadline = ContinuousClock.now + .seconds(150)
            while ContinuousClock.now < deadline, scheduler.isRunning {
                runs = try await store.runs("slow-every-minute").compactMap(\.objectValue)
                if let first = batches().last, try await finished(first), !skipped().isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            await scheduler.terminate(grace: .seconds(5))
            let schedulerLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            // Every batch it started finishes on its own, scheduler or not.
            for batch in batches() {
                while ContinuousClock.now < deadline, try await !finished(batch) { try await Task.sleep(for: .milliseconds(200)) }
            }

            let launched = batches()
            #expect(!launched.isEmpty && Set(launched).count == launched.count, "\(runs)\n\(schedulerLog)")
            #expect(!skipped().isEmpty, "no occurrence was skipped while a batch ran: \(runs)\n\(schedulerLog)")
            for run in runs {
                #expect(run["trigger_context"]?.objectValue?["type"] == .string("schedule") && run["session_id"] == .null)
            }
            for skip in skipped() {
                let message = skip["error"]?.objectValue?["message"]?.stringValue ?? ""
                #expect(launched.contains { message.contains($0) }, "\(message)")
            }
            for batch in launched {
                #expect(try await finished(batch), "\(batch) did not finish")
                let report = try JSONValue.parse(String(contentsOf: reports.appendingPathComponent("\(batch)/report.json"), encoding: .utf8))
                let items = report.objectValue?["items"]?.arrayValue ?? []
                #expect(items.count == 2 && items.allSatisfy { $0.objectValue?["status"] == .string("succeeded") }, "\(batch): \(report)")
            }
            let listed = try await runProgramSeparately(droverBinary.path, ["batch", "list"], environment: environment)
            #expect(launched.allSatisfy { listed.stdout.contains($0) }, "\(listed.stdout)")
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
        // The schedules start jobs, named by path from the schedule: ../Jobs/NAME.yaml.
        try FileManager.default.copyItem(at: projectRoot.appendingPathComponent("Jobs"), to: directory.appendingPathComponent("Jobs"))
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
        #expect(bad.stderr.contains("nightly-research.yaml:10: schedule.timezone: 'Europe/Nowhere' is not an IANA timezone. Fix:"), "\(bad.stderr)")
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
