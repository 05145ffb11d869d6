import DroverCore
import DroverTesting
import Foundation
import Testing

/// `drover run` end to end: the real binary, embedded Redis, SQLite, bubblewrap sandboxes and
/// the scripted model following each job's playbook.
@Suite("drover run", .serialized)
struct JobRunTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    let directory = scratchDirectory("jobrun")

    /// What the main job's playbook grades each submission, on one server or a cluster.
    static let expectedScores = [
        "ada": 100, "ben": 100, "chen": 90, "dara": 90, "eli": 90, "fay": 90, "gus": 90,
        "hana": 0, "ivan": 0, "jo": 20, "kim": 100, "lee": 80,
    ]

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["DROVER_REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DROVER_DB"] { environment.removeValue(forKey: key) }
        environment["DROVER_DATA_DIR"] = directory.appendingPathComponent("data").path
        return environment.merging(extra) { $1 }
    }

    struct Report: Decodable {
        struct Item: Decodable {
            let item_id: String
            let status: String
            let attempts: Int
            let sessions: [String]
            let columns: [String: JSONValue]
            let from_earlier_run: Bool
        }
        let items: [Item]
        let model: String
    }

    struct FullReport: Decodable {
        struct Item: Decodable {
            let input_tokens: Int
            let duration_seconds: Double
        }
        let items: [Item]
    }

    func report(_ folder: URL) throws -> Report {
        try JSONDecoder().decode(Report.self, from: Data(contentsOf: folder.appendingPathComponent("report.json")))
    }

    @Test("the main job grades every submission with real scores; the loop times out, the snoop finds nothing; a rerun redoes nothing")
    func gradeAssignments() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let secret = "drover-test-secret-\(Identifier.make(prefix: "s").suffix(12))"
        let reportDirectory = directory.appendingPathComponent("report")
        let job = Self.repository.appendingPathComponent("Jobs/grade-assignments.yaml").path
        let run = try await runProgramSeparately(
            droverBinary.path, ["run", job, "--report-dir", reportDirectory.path],
            environment: environment(["DROVER_GRADING_SECRET": secret]), timeout: .seconds(300))
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.hasPrefix("drover run grade-assignments: scripted model"))

        let report = try report(reportDirectory)
        #expect(report.model.contains("scripted"))
        var scores: [String: Int] = [:]
        for item in report.items {
            #expect(item.status == "succeeded", "\(item.item_id)")
            if case .number(let score)? = item.columns["score"] { scores[item.item_id] = Int(score) }
        }
        #expect(scores == Self.expectedScores)
        let byId = Dictionary(uniqueKeysWithValues: report.items.map { ($0.item_id, $0) })
        #expect(byId["jo"]?.columns["verdict"] == .string("timeout"))
        #expect(byId["hana"]?.columns["verdict"] == .string("error"))
        #expect(byId["kim"]?.columns["notes"] == .string("LOOT: nothing"))
        let csv = try String(contentsOf: reportDirectory.appendingPathComponent("report.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 13)
        #expect(try String(contentsOf: reportDirectory.appendingPathComponent("summary.md"), encoding: .utf8).contains("| jo | succeeded | 20 |"))

        // The secret was in drover's own environment: no report, event, log or file may hold it.
        var leaks: [String] = []
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
        while let file = files?.nextObject() as? URL {
            guard (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                let data = try? Data(contentsOf: file)
            else { continue }
            if data.range(of: Data(secret.utf8)) != nil { leaks.append(file.path) }
        }
        #expect(leaks.isEmpty, "the secret leaked into \(leaks)")

        // Metering: the batch's tokens are the items' tokens; active time is running time only,
        // so never more than the items' wall-clock time.
        let usage = try await runProgramSeparately(droverBinary.path, ["report", "usage", "--json"], environment: environment())
        #expect(usage.status == 0, "\(usage.stderr)")
        struct Usage: Decodable {
            struct Row: Decodable {
                let batch: String
                let sessions: Int
                let input_tokens: Int
                let output_tokens: Int
                let active_seconds: Double
            }
            struct Workspace: Decodable {
                let workspace: String
            }
            let batches: [Row]
            let workspaces: [Workspace]
        }
        let metered = try JSONDecoder().decode(Usage.self, from: Data(usage.stdout.utf8))
        let batchUsage = try #require(metered.batches.first)
        // The batch's sessions are in the local workspace the API and deployments use: one.
        #expect(metered.workspaces.map(\.workspace) == ["wrkspc_default"])
        let full = try JSONDecoder().decode(FullReport.self, from: Data(contentsOf: reportDirectory.appendingPathComponent("report.json")))
        #expect(batchUsage.batch == "batch_grade_assignments")
        #expect(batchUsage.sessions == 12)
        #expect(batchUsage.input_tokens == full.items.reduce(0) { $0 + $1.input_tokens })
        #expect(batchUsage.output_tokens > 0)
        #expect(batchUsage.active_seconds > 0)
        #expect(batchUsage.active_seconds <= full.items.reduce(0) { $0 + $1.duration_seconds } + 0.5)

        let rerun = try await runProgramSeparately(
            droverBinary.path, ["run", job, "--report-dir", reportDirectory.path],
            environment: environment(), timeout: .seconds(120))
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stdout.contains("12 items: 12 finished in an earlier run, 0 to run"))
        #expect(try self.report(reportDirectory).items.allSatisfy { $0.from_earlier_run && $0.sessions.count == 1 })
    }

    @Test("the wiki digest drafts into the review folder; the research run leaves a report, a plot and its analysis")
    func shippedJobs() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let wiki = directory.appendingPathComponent("wiki")
        let result = try await runProgramSeparately(
            droverBinary.path, ["run", Self.repository.appendingPathComponent("Jobs/wiki-digest.yaml").path, "--report-dir", wiki.path],
            environment: environment(), timeout: .seconds(120))
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let abstracts = try FileManager.default.contentsOfDirectory(
            atPath: Self.repository.appendingPathComponent("Jobs/data/wiki-digest/abstracts").path)
        let drafts = try FileManager.default.contentsOfDirectory(atPath: wiki.appendingPathComponent("review").path)
        #expect(Set(drafts) == Set(abstracts.map { $0.replacingOccurrences(of: ".txt", with: ".md") }))
        let entry = try String(contentsOf: wiki.appendingPathComponent("review/cron-drift.md"), encoding: .utf8)
        #expect(entry.hasPrefix("# Missed Runs and Thundering Herds in Cron Schedulers"))
        #expect(entry.contains("83 percent"))
        #expect(try report(wiki).items.allSatisfy { $0.columns["style"] == .string("ok") })

        let research = directory.appendingPathComponent("research")
        let run = try await runProgramSeparately(
            droverBinary.path, ["run", Self.repository.appendingPathComponent("Jobs/research-run.yaml").path, "--report-dir", research.path],
            environment: environment(), timeout: .seconds(120))
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let item = try #require(try report(research).items.first)
        #expect(item.columns["rows"] == .number(365))
        #expect(item.columns["warmest_month"] == .string("2025-07"))
        let plot = try String(contentsOf: research.appendingPathComponent("river-2025/plot.svg"), encoding: .utf8)
        #expect(plot.contains("<polyline"))
        #expect(try String(contentsOf: research.appendingPathComponent("river-2025/report.md"), encoding: .utf8).contains("| 2025-12 |"))
    }

    @Test("the literature review: a coordinator's searcher, extractor and synthesiser threads leave a checked review per question")
    func literatureReview() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let folder = directory.appendingPathComponent("review")
        let run = try await runProgramSeparately(
            droverBinary.path, ["run", Self.repository.appendingPathComponent("Jobs/literature-review.yaml").path, "--report-dir", folder.path],
            environment: environment(), timeout: .seconds(180))
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let items = try report(folder).items
        #expect(Set(items.map(\.item_id)) == ["long-sequences", "retrieval"])
        for item in items {
            #expect(item.status == "succeeded")
            #expect(item.columns["ok"] == .bool(true), "\(item.columns)")
            #expect(item.columns["sections"] == .string("Findings, Evidence, Method"))
        }
        let long = try #require(items.first { $0.item_id == "long-sequences" })
        // The searcher's ranking, the extractor's numbers and the synthesiser's review, as the
        // tools computed them from the shipped abstracts.
        #expect(long.columns["papers"] == .number(5))
        #expect(long.columns["fastest"] == .string("L01 3.8x"))
        let review = try String(contentsOf: folder.appendingPathComponent("long-sequences/review.md"), encoding: .utf8)
        #expect(review.contains("# Literature review: Which methods make attention cheaper on long sequences"))
        #expect(
            review.contains(
                "| L02 Sliding Windows with Global Tokens for Long Documents | 2020 | Long Range Arena, WikiText-103 | 2.9x | 55.0% accuracy; perplexity 18.9 |"
            ))
        let retrieval = try String(contentsOf: folder.appendingPathComponent("retrieval/review.md"), encoding: .utf8)
        #expect(retrieval.contains("| R01 Retrieval-Augmented Generation for Open-Domain Questions |"))
        // The threads' tokens count towards the batch: two coordinators and their six threads.
        let usage = try await runProgramSeparately(droverBinary.path, ["report", "usage", "--by", "batch", "--json"], environment: environment())
        let batches = try JSONValue.parse(usage.stdout).objectValue?["batches"]?.arrayValue ?? []
        let batch = try #require(batches.first { $0.objectValue?["batch"] == .string("batch_literature_review") }?.objectValue, "\(usage.stdout)")
        #expect(batch["sessions"] == .number(8))
    }

    @Test("killed halfway, a rerun finishes the job without redoing finished items, and the report is complete")
    func killAndResume() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("slow.yaml")
        try Data(
            """
            name: slow
            agent: {model: claude-sonnet-4-5}
            items:
              list: [a, b, c, d, e, f, g, h]
            prompt: "Process item {{value}}"
            concurrency: 2
            timeout_seconds: 60
            output: {columns: [ok]}
            playbook:
              ttft_ms: 250
              steps: [{tool: bash, input: {command: "sleep 0.2; echo processed"}}]
              final: '{"ok": true}'
            """.utf8
        ).write(to: job)
        let reportDirectory = directory.appendingPathComponent("report")
        let output = directory.appendingPathComponent("first-run.out").path
        let child = try ChildProcess(
            executable: droverBinary.path, arguments: ["run", job.path, "--report-dir", reportDirectory.path],
            environment: environment(), outputPath: output)
        var firstRun: [String] = []
        var text = ""
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, child.isRunning {
            text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            firstRun = text.split(separator: "\n").filter { $0.hasPrefix("succeeded") }.map {
                String($0.split(separator: " ", omittingEmptySubsequences: true)[2])
            }
            if firstRun.count >= 3 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(child.isRunning, "the first run ended before it could be killed:\n\((try? String(contentsOfFile: output, encoding: .utf8)) ?? text)")
        await child.kill()
        let finishedBeforeKill = Set(firstRun)
        #expect(finishedBeforeKill.count >= 3 && finishedBeforeKill.count < 8)

        let second = try await runProgramSeparately(
            droverBinary.path, ["run", job.path, "--report-dir", reportDirectory.path],
            environment: environment(), timeout: .seconds(120))
        #expect(second.status == 0, "\(second.stdout)\n\(second.stderr)")
        let report = try report(reportDirectory)
        #expect(report.items.map(\.item_id) == ["a", "b", "c", "d", "e", "f", "g", "h"])
        #expect(report.items.allSatisfy { $0.status == "succeeded" && $0.columns["ok"] == .bool(true) })
        let earlier = Set(report.items.filter(\.from_earlier_run).map(\.item_id))
        // Everything the first run reported finished is taken as it was: same single session.
        #expect(finishedBeforeKill.isSubset(of: earlier))
        for item in report.items where finishedBeforeKill.contains(item.item_id) {
            #expect(item.sessions.count == 1 && item.attempts == 1, "\(item.item_id) was redone")
        }
        #expect(second.stdout.contains("\(earlier.count) finished in an earlier run, \(8 - earlier.count) to run"))
    }

    /// Waits until `output` (a run's standard output) has lines starting with `prefix` for `count`
    /// items, and returns those items with the session each names.
    func startedItems(_ output: String, prefix: String, count: Int, child: ChildProcess) async throws -> [String: String] {
        let deadline = ContinuousClock.now + .seconds(120)
        var started: [String: String] = [:]
        while ContinuousClock.now < deadline, child.isRunning {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
                let words = line.split(separator: " ", omittingEmptySubsequences: true)
                if words.count >= 3 { started[String(words[1])] = String(words[2]) }
            }
            if started.count >= count { return started }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("\(count) items never started:\n\((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        return started
    }

    @Test(
        "Ctrl-C drains: running items finish, the rest stay pending with their attempts; a second Ctrl-C stops at once; the rerun continues the same sessions"
    )
    func interruptDrainsAndResumes() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("drain.yaml")
        try Data(
            """
            name: drain
            agent: {model: claude-sonnet-4-5}
            items: {list: [a, b, c, d]}
            prompt: "Item {{value}}"
            concurrency: 2
            retries: 0
            timeout_seconds: 120
            output: {columns: [ok]}
            playbook:
              steps: [{tool: bash, input: {command: "sleep 3; echo done"}}]
              final: '{"ok": true}'
            """.utf8
        ).write(to: job)
        let reportDirectory = directory.appendingPathComponent("report")
        let arguments = ["run", job.path, "--report-dir", reportDirectory.path]

        // First run: Ctrl-C (SIGINT to its process group, as a terminal sends it) while two
        // items run. They get the drain to finish; the other two never start.
        let firstOutput = directory.appendingPathComponent("first.out").path
        let first = try ChildProcess(
            executable: droverBinary.path, arguments: arguments + ["--drain-seconds", "100"], environment: environment(), outputPath: firstOutput)
        let firstStarted = try await startedItems(firstOutput, prefix: "start ", count: 2, child: first)
        kill(-first.pid, SIGINT)
        #expect(await first.exitCodeWhenDone() == 130, "\((try? String(contentsOfFile: firstOutput, encoding: .utf8)) ?? "")")
        let afterFirst = try report(reportDirectory)
        for item in afterFirst.items {
            if firstStarted[item.item_id] != nil {
                #expect(item.status == "succeeded" && item.sessions == [firstStarted[item.item_id]!], "\(item)")
            } else {
                #expect(item.status == "pending" && item.attempts == 0 && item.sessions.isEmpty, "\(item)")
            }
        }

        // Second run: Ctrl-C twice while the other two run: it stops at once, and they keep
        // their sessions and attempts (no report is written by a run stopped that way).
        let secondOutput = directory.appendingPathComponent("second.out").path
        let second = try ChildProcess(executable: droverBinary.path, arguments: arguments, environment: environment(), outputPath: secondOutput)
        let secondStarted = try await startedItems(secondOutput, prefix: "start ", count: 2, child: second)
        kill(-second.pid, SIGINT)
        try await Task.sleep(for: .milliseconds(300))
        kill(-second.pid, SIGINT)
        #expect(await second.exitCodeWhenDone() == 130, "\((try? String(contentsOfFile: secondOutput, encoding: .utf8)) ?? "")")
        #expect(Set(secondStarted.keys) == Set(["a", "b", "c", "d"]).subtracting(firstStarted.keys))

        // The rerun continues both in their own sessions, with no attempt spent.
        let third = try await runProgramSeparately(droverBinary.path, arguments, environment: environment(), timeout: .seconds(120))
        #expect(third.status == 0, "\(third.stdout)\n\(third.stderr)")
        #expect(third.stdout.contains("4 items: 2 finished in an earlier run, 2 to run (2 continue their sessions)"), "\(third.stdout)")
        let final = try report(reportDirectory)
        #expect(final.items.allSatisfy { $0.status == "succeeded" && $0.attempts == 1 && $0.columns["ok"] == .bool(true) })
        for item in final.items {
            #expect(item.sessions == [firstStarted[item.item_id] ?? secondStarted[item.item_id] ?? "?"], "\(item)")
        }
    }

    @Test(
        "kill -9 mid-item: the rerun continues the same session from its log; the cut-off call gets one error result; earlier tool calls are not redone"
    )
    func crashResumesTheSession() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Step 1 counts its own runs; step 2 is slow enough to be killed in; step 3 reports how
        // often step 1 ran. retries: 0, so only resuming (which is no attempt) can finish it.
        func job(_ name: String) throws -> String {
            let file = directory.appendingPathComponent("\(name).yaml")
            try Data(
                """
                name: \(name)
                agent: {model: claude-sonnet-4-5}
                items: {list: [river]}
                prompt: "Analyse {{value}}"
                retries: 0
                timeout_seconds: 120
                output: {columns: [first, step1_runs]}
                playbook:
                  steps:
                    - {tool: bash, input: {command: "echo ran >> /workspace/step1.log; wc -l < /workspace/step1.log"}}
                    - {tool: bash, input: {command: "sleep 4; echo slept"}}
                    - {tool: bash, input: {command: "wc -l < /workspace/step1.log"}}
                  final: '{"first": {{result_1}}, "step1_runs": {{result_3}}}'
                """.utf8
            ).write(to: file)
            return file.path
        }
        let reportDirectory = directory.appendingPathComponent("report")
        let arguments = ["run", try job("crash"), "--report-dir", reportDirectory.path]
        let output = directory.appendingPathComponent("first.out").path
        let first = try ChildProcess(executable: droverBinary.path, arguments: arguments, environment: environment(), outputPath: output)
        let session = try #require(try await startedItems(output, prefix: "start ", count: 1, child: first)["river"])
        // Killed once step 2 has started: its call is in the log with no result.
        let deadline = ContinuousClock.now + .seconds(120)
        var events = ""
        while ContinuousClock.now < deadline, first.isRunning {
            events = try await runProgramSeparately(droverBinary.path, ["sessions", "events", session], environment: environment()).stdout
            if events.components(separatedBy: "\"agent.tool_use\"").count - 1 >= 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(first.isRunning, "the run ended before step 2:\n\(events)")
        await first.kill()

        let rerun = try await runProgramSeparately(droverBinary.path, arguments, environment: environment(), timeout: .seconds(120))
        #expect(rerun.status == 0, "\(rerun.stdout)\n\(rerun.stderr)")
        #expect(rerun.stdout.contains("resume river  \(session)"), "\(rerun.stdout)")
        let item = try #require(try report(reportDirectory).items.first)
        #expect(item.status == "succeeded" && item.sessions == [session] && item.attempts == 1, "\(item)")

        let log = try await runProgramSeparately(droverBinary.path, ["sessions", "events", session], environment: environment()).stdout
        #expect(log.components(separatedBy: "interrupted by a worker crash").count - 1 == 1, "\(log)")
        #expect(log.components(separatedBy: "\"type\":\"user.message\"").count - 1 == 1)

        // The same job, never interrupted, reports the same.
        let calm = directory.appendingPathComponent("calm-report")
        let uninterrupted = try await runProgramSeparately(
            droverBinary.path, ["run", try job("calm"), "--report-dir", calm.path], environment: environment(), timeout: .seconds(120))
        #expect(uninterrupted.status == 0, "\(uninterrupted.stdout)\n\(uninterrupted.stderr)")
        let expected = try #require(try report(calm).items.first)
        #expect(item.columns == expected.columns && item.columns["step1_runs"] == .number(1), "\(item.columns) vs \(expected.columns)")
    }

    @Test("--retry-failed starts failed items over with their attempts, says how many, and keeps the earlier result in the report")
    func retryFailed() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("flaky.yaml")
        // `broken` fails until the playbook (the scripted model's behaviour, which is not part of
        // an item's key) is fixed between runs.
        func write(answer: String) throws {
            try Data(
                """
                name: flaky
                agent: {model: claude-sonnet-4-5}
                items: {list: [fine, broken]}
                prompt: "Item {{value}}"
                retries: 0
                output: {columns: [ok]}
                playbook:
                  steps: [{tool: bash, input: {command: "test '{{user_text}}' = 'Item fine' && echo true || echo \(answer)"}}]
                  final: '{"ok": {{result_1}}}'
                """.utf8
            ).write(to: job)
        }
        try write(answer: "oops")
        let reportDirectory = directory.appendingPathComponent("report")
        let arguments = ["run", job.path, "--report-dir", reportDirectory.path]
        let first = try await runProgramSeparately(droverBinary.path, arguments, environment: environment(), timeout: .seconds(120))
        #expect(first.status == 1, "\(first.stdout)\n\(first.stderr)")
        let failed = try #require(try report(reportDirectory).items.first { $0.item_id == "broken" })
        #expect(failed.status == "failed" && failed.attempts == 1)

        // Without the flag nothing is redone; with it, the failed item runs again, all attempts new.
        let again = try await runProgramSeparately(droverBinary.path, arguments, environment: environment(), timeout: .seconds(120))
        #expect(again.status == 1 && again.stdout.contains("2 items: 2 finished in an earlier run, 0 to run"), "\(again.stdout)")
        try write(answer: "true")
        let retried = try await runProgramSeparately(
            droverBinary.path, arguments + ["--retry-failed"], environment: environment(), timeout: .seconds(120))
        #expect(retried.status == 0, "\(retried.stdout)\n\(retried.stderr)")
        #expect(retried.stdout.contains("2 items: 1 finished in an earlier run, 1 to run (1 started over)"), "\(retried.stdout)")
        let json = try JSONValue.parse(String(contentsOf: reportDirectory.appendingPathComponent("report.json"), encoding: .utf8))
        let items = json.objectValue?["items"]?.arrayValue ?? []
        let broken = try #require(items.first { $0.objectValue?["item_id"] == .string("broken") }?.objectValue)
        #expect(broken["status"] == .string("succeeded") && broken["attempts"] == .number(1))
        let earlier = try #require(broken["earlier"]?.arrayValue?.first?.objectValue, "\(broken)")
        #expect(earlier["status"] == .string("failed") && earlier["attempts"] == .number(1))
        #expect(earlier["error"]?.stringValue?.isEmpty == false)
        #expect(
            earlier["sessions"]?.arrayValue?.count == 1 && broken["sessions"]?.arrayValue?.count == 1 && earlier["sessions"] != broken["sessions"])
    }

    @Test(
        "batch cancel stops a running batch and ends its sessions; run --item reruns one item; batch show marks current rows; batch delete forgets it"
    )
    func batchCommands() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("ops.yaml")
        try Data(
            """
            name: ops
            agent: {model: claude-sonnet-4-5}
            items: {list: [a, b, c]}
            prompt: "Item {{value}}"
            concurrency: 1
            output: {columns: [ok]}
            playbook:
              steps: [{tool: bash, input: {command: "sleep 3; echo true"}}]
              final: '{"ok": {{result_1}}}'
            """.utf8
        ).write(to: job)
        let reportDirectory = directory.appendingPathComponent("report")
        let arguments = ["run", job.path, "--report-dir", reportDirectory.path]
        func drover(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await runProgramSeparately(droverBinary.path, arguments, environment: environment(), timeout: .seconds(120))
        }

        let output = directory.appendingPathComponent("run.out").path
        let run = try ChildProcess(executable: droverBinary.path, arguments: arguments, environment: environment(), outputPath: output)
        let session = try #require(try await startedItems(output, prefix: "start ", count: 1, child: run)["a"])
        let cancel = try await drover(["batch", "cancel", "batch_ops"])
        #expect(cancel.status == 0 && cancel.stdout.contains("cancelled batch_ops: its run stopped"), "\(cancel)")
        #expect(await run.exitCodeWhenDone() == 1)
        #expect(((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("cancelled: 0 succeeded"))
        let cancelled = try report(reportDirectory)
        #expect(cancelled.items.map(\.status) == ["cancelled", "cancelled", "cancelled"], "\(cancelled.items)")
        let events = try await drover(["sessions", "events", session]).stdout
        #expect(events.contains("session.status_terminated"), "a cancelled item's session ends for good")

        // A rerun leaves cancelled items alone; --item runs just the one named.
        let one = try await drover(arguments + ["--item", "b"])
        #expect(one.status == 1 && one.stdout.contains("(1 started over)"), "\(one.stdout)\n\(one.stderr)")
        let after = try report(reportDirectory)
        #expect(after.items.map(\.status) == ["cancelled", "succeeded", "cancelled"], "\(after.items)")
        let unknown = try await drover(arguments + ["--item", "zed"])
        #expect(unknown.status == 2 && unknown.stderr.contains("--item: zed is not an item of ops"), "\(unknown.stderr)")

        let show = try JSONValue.parse(try await drover(["batch", "show", "batch_ops"]).stdout)
        let rows = show.objectValue?["items"]?.arrayValue ?? []
        #expect(rows.count == 3 && rows.allSatisfy { $0.objectValue?["current"] == .bool(true) }, "\(show)")

        let deleted = try await drover(["batch", "delete", "batch_ops"])
        #expect(deleted.status == 0 && deleted.stdout.contains("deleted batch_ops"), "\(deleted)")
        #expect(try await drover(["batch", "show", "batch_ops"]).status != 0)
        let purge = try await drover(["queue", "purge", "jobs.ops"])
        #expect(purge.status == 0 && purge.stdout.contains("purged jobs.ops: 0 ready"), "\(purge)")
    }

    @Test("drover deployments run on a job schedule starts its batch, which outlives the command and its embedded Redis")
    func manualJobRun() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let schedules = directory.appendingPathComponent("Schedules")
        try FileManager.default.createDirectory(at: schedules, withIntermediateDirectories: true)
        let reports = directory.appendingPathComponent("reports")
        try Data(
            """
            name: quick
            agent: {model: claude-sonnet-4-5}
            items: {list: [a, b]}
            prompt: "Item {{value}}"
            output: {columns: [ok]}
            report: {dir: "\(reports.path)"}
            playbook:
              steps: [{tool: bash, input: {command: "sleep 1; echo true"}}]
              final: '{"ok": {{result_1}}}'
            """.utf8
        ).write(to: directory.appendingPathComponent("quick.yaml"))
        try Data("name: quick-daily\njob: ../quick.yaml\nschedule: {type: cron, expression: \"0 3 * * *\", timezone: UTC}\n".utf8)
            .write(to: schedules.appendingPathComponent("quick.yaml"))
        func drover(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await runProgramSeparately(droverBinary.path, arguments, environment: environment(), timeout: .seconds(120))
        }
        #expect(try await drover(["apply", schedules.path]).status == 0)
        let fired = try await drover(["deployments", "run", "quick-daily"])
        #expect(fired.status == 0, "\(fired)")
        let run = try JSONValue.parse(fired.stdout).objectValue ?? [:]
        let batch = try #require(run["batch_id"]?.stringValue, "\(fired.stdout)")
        #expect(batch.hasPrefix("batch_quick_") && run["session_id"] == .null && run["trigger_context"]?.objectValue?["type"] == .string("manual"))
        // The command has exited (and stopped owning the embedded Redis); the batch goes on.
        let report = reports.appendingPathComponent("\(batch)/report.json")
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, !FileManager.default.fileExists(atPath: report.path) { try await Task.sleep(for: .milliseconds(200)) }
        let items = try JSONValue.parse(String(contentsOf: report, encoding: .utf8)).objectValue?["items"]?.arrayValue ?? []
        #expect(items.count == 2 && items.allSatisfy { $0.objectValue?["status"] == .string("succeeded") }, "\(items)")
        let listed = try await drover(["batch", "list"])
        #expect(listed.stdout.contains(batch) && listed.stdout.contains("completed"), "\(listed.stdout)")
    }

    @Test("an item over its timeout is interrupted and reported as timed out; a budget stops new items; exit 1")
    func timeoutAndBudget() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("stuck.yaml")
        try Data(
            """
            name: stuck
            agent: {model: claude-sonnet-4-5}
            items: {list: [one, two, three]}
            prompt: "Item {{value}}"
            concurrency: 1
            timeout_seconds: 1.5
            budget: {max_tokens: 1}
            playbook:
              steps: [{tool: bash, input: {command: "sleep 600"}}]
              final: '{"never": true}'
            """.utf8
        ).write(to: job)
        let reportDirectory = directory.appendingPathComponent("report")
        // The step sleeps 600 s: finishing inside the 120 s limit at all is the item's timeout working.
        let result = try await runProgramSeparately(
            droverBinary.path, ["run", job.path, "--report-dir", reportDirectory.path],
            environment: environment(), timeout: .seconds(120))
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        let report = try report(reportDirectory)
        #expect(report.items.map(\.status) == ["timed_out", "skipped", "skipped"])
        #expect(result.stdout.contains("budget: the budget of 1 tokens is spent"))
        let session = try #require(report.items.first?.sessions.first)
        let replay = try await runProgramSeparately(droverBinary.path, ["sessions", "events", session], environment: environment())
        #expect(replay.stdout.contains("user.interrupt"), "\(replay.stdout)")
        #expect(replay.stdout.contains("session.status_terminated"))
    }

    @Test("a job's environment reaches every sandbox: its pip package imports; a malformed network entry is refused before anything runs")
    func environment() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let wheels = directory.appendingPathComponent("wheels")
        try FileManager.default.createDirectory(at: wheels, withIntermediateDirectories: true)
        let made = try await runProgram(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sys, zipfile
                with zipfile.ZipFile(sys.argv[1] + "/jobtiny-1.0-py3-none-any.whl", "w") as z:
                    z.writestr("jobtiny/__init__.py", "ANSWER = 42\\n")
                    z.writestr("jobtiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\\nName: jobtiny\\nVersion: 1.0\\n")
                    z.writestr("jobtiny-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\\nGenerator: drover-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
                    z.writestr("jobtiny-1.0.dist-info/RECORD", "")
                """, wheels.path,
            ])
        #expect(made.status == 0, "\(made.output)")
        let job = directory.appendingPathComponent("env.yaml")
        func write(networking: String) throws {
            try Data(
                """
                name: env
                agent: {model: claude-sonnet-4-5}
                environment:
                  name: tiny
                  config: {type: cloud, packages: {pip: [jobtiny]}, networking: \(networking)}
                items: {list: [a, b]}
                prompt: "Item {{value}}"
                output: {columns: [answer]}
                playbook:
                  steps: [{tool: bash, input: {command: "python3 -c 'import jobtiny; print(jobtiny.ANSWER)'"}}]
                  final: '{"answer": {{result_1}}}'
                """.utf8
            ).write(to: job)
        }
        try write(networking: "{type: limited, allowed_hosts: []}")
        let reportDirectory = directory.appendingPathComponent("report")
        // pip runs in its install sandbox with the PIP_* settings of the host: a local wheel, no index.
        let run = try await runProgramSeparately(
            droverBinary.path, ["run", job.path, "--report-dir", reportDirectory.path],
            environment: environment(["PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheels.path]), timeout: .seconds(180))
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(try report(reportDirectory).items.map { $0.columns["answer"] } == [.number(42), .number(42)])

        try write(networking: "{type: limited, allowed_hosts: ['https://pypi.org']}")
        let refused = try await runProgramSeparately(droverBinary.path, ["run", job.path], environment: environment())
        #expect(refused.status == 2)
        #expect(
            refused.stderr.contains("environment") && refused.stderr.contains("config.networking.allowed_hosts[0]")
                && refused.stderr.contains("Fix:"),
            "\(refused.stderr)")
    }

    @Test("a bad job file exits 2 with the file, the line and the fix, and starts nothing")
    func badFile() async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let job = directory.appendingPathComponent("bad.yaml")
        try Data("name: bad\nagent: {model: m}\nitems: {list: [a]}\nprompt: hi\nretries: many\n".utf8).write(to: job)
        let result = try await runProgramSeparately(droverBinary.path, ["run", job.path], environment: environment())
        #expect(result.status == 2)
        #expect(result.stderr.contains("bad.yaml:5: retries: must be a whole number"), "\(result.stderr)")
        #expect(result.stderr.contains("Fix:"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("data/drover.db").path))

        let missing = try await runProgramSeparately(
            droverBinary.path, ["run", directory.appendingPathComponent("nope.yaml").path], environment: environment())
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read the file"))

        try Data("name: np\nagent: {model: m}\nitems: {list: [a]}\nprompt: hi\n".utf8).write(to: job)
        let noPlaybook = try await runProgramSeparately(droverBinary.path, ["run", job.path], environment: environment())
        #expect(noPlaybook.status == 2)
        #expect(noPlaybook.stderr.contains("playbook"))
        #expect(noPlaybook.stderr.contains("ANTHROPIC_API_KEY"))
    }
}
