import DroverBrain
import DroverCore
import DroverQueue
import DroverTesting
import Foundation
import Testing

/// Issue 12, hole 5: kill -9 of Redis, then a restart on its AOF, used to end every worker and
/// recorder with "lost the connection to Redis ... while a command was in flight".
@Suite("Redis restarts under running workers and recorders", .serialized)
struct RedisRestartTests {
    @Test("five kill -9 restarts of Redis: the worker and recorder stay up, every turn finishes, SQLite holds each event once")
    func restarts() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "Looking at it."
                    ttft_ms: 100
                    tool_use: {name: echo, input: {text: "checked"}}
                  - text: "Graded."
                """, appendFsync: "always"
        ) { brain in
            let roles = try RoleProcesses(brain)
            let (worker, recorder) = (roles.worker, roles.recorder)
            var sessions: [SessionID] = []
            for round in 1...5 {
                let session = try await brain.newSession(saying: "Grade submission \(round)")
                try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)
                sessions.append(session)
                // Crash while this round's turn is under way (or queued), whatever the machine's pace.
                try await roles.waitFor("round \(round) to start") {
                    ((try? await brain.types(session)) ?? []).count > 1
                }
                await brain.server.crash()
                try await Task.sleep(for: .milliseconds(300))
                try await brain.server.startAgain()
                #expect(worker.isRunning && recorder.isRunning, "round \(round): a process exited; logs:\n\(roles.logs())")
            }
            for session in sessions {
                try await roles.waitFor("\(session) to go idle") {
                    ((try? await brain.types(session)) ?? []).last == "session.status_idle"
                }
            }
            #expect(worker.isRunning, "the worker exited:\n\(roles.logs())")
            #expect(recorder.isRunning, "the recorder exited:\n\(roles.logs())")
            // The recorder mirrors every event once: SQLite's count per session reaches the log's.
            for session in sessions {
                let logged = try await brain.log.read(session, limit: 1000)
                try await roles.waitFor("\(session) to be mirrored") {
                    ((try? await brain.database.eventCount(session: session.rawValue)) ?? -1) == logged.count
                }
                let seqs = logged.map(\.seq)
                #expect(seqs == Array(1...Int64(seqs.count)), "the log has a gap or a repeat: \(seqs)")
                #expect(logged.filter { $0.type == "agent.message" }.count == 2, "\(logged.map(\.type))")
            }
            await worker.terminate(grace: .seconds(20))
            await recorder.terminate(grace: .seconds(20))
            #expect(
                worker.exitCode == 0 && recorder.exitCode == 0,
                "unclean exit: \(String(describing: worker.exitCode)) \(String(describing: recorder.exitCode))\n\(roles.logs())")
            let text = roles.logs()
            #expect(text.contains("Redis is unreachable") && text.contains("Redis is back"), "outages are logged:\n\(text)")
        }
    }

    @Test("a worker and a recorder started while Redis is down wait for it, then run and mirror the turn")
    func startedDuringAnOutage() async throws {
        try await withBrain(script: "turns:\n  - text: \"Graded.\"\n", appendFsync: "always") { brain in
            let session = try await brain.newSession(saying: "Grade the submission")
            try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)
            await brain.server.crash()
            let roles = try RoleProcesses(brain)
            // Each says it is waiting, and is still running when it has said so: before, each
            // exited at once with "cannot connect to Redis".
            try await roles.waitFor("both processes to report the outage") {
                #expect(roles.worker.isRunning && roles.recorder.isRunning, "a process exited; logs:\n\(roles.logs())")
                guard roles.worker.isRunning && roles.recorder.isRunning else { return true }
                return roles.logs(limit: nil).contains("drover worker keeps retrying")
                    && roles.logs(limit: nil).contains("drover recorder keeps retrying")
            }
            try #require(roles.worker.isRunning && roles.recorder.isRunning)
            try await brain.server.startAgain()
            try await roles.waitFor("the turn to finish") {
                ((try? await brain.types(session)) ?? []).last == "session.status_idle"
            }
            let logged = try await brain.log.read(session, limit: 100)
            try await roles.waitFor("the turn to be mirrored") {
                ((try? await brain.database.eventCount(session: session.rawValue)) ?? -1) == logged.count
            }
            await roles.worker.terminate(grace: .seconds(20))
            await roles.recorder.terminate(grace: .seconds(20))
            #expect(roles.worker.exitCode == 0 && roles.recorder.exitCode == 0, "unclean exit:\n\(roles.logs())")
            let text = roles.logs(limit: nil)
            #expect(
                text.contains("Redis is back; drover worker resumed") && text.contains("Redis is back; drover recorder resumed"), "\(roles.logs())")
        }
    }
}

/// A `drover worker` and a `drover recorder` against the fixture's Redis, each logging to a file
/// beside the database, so that a failure shows what both said.
private struct RoleProcesses {
    let worker: ChildProcess
    let recorder: ChildProcess
    let workerLog: String
    let recorderLog: String

    init(_ brain: BrainFixture) throws {
        let directory = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent()
        let environment = brain.processEnvironment
        workerLog = directory.appendingPathComponent("worker.log").path
        recorderLog = directory.appendingPathComponent("recorder.log").path
        worker = try ChildProcess(
            executable: droverBinary.path,
            arguments: ["worker", "--concurrency", "2", "--lease-seconds", "5", "--drain-seconds", "5", "--hands", "in-process"],
            environment: environment, outputPath: workerLog)
        recorder = try ChildProcess(executable: droverBinary.path, arguments: ["recorder"], environment: environment, outputPath: recorderLog)
    }

    /// Both logs, the last `limit` characters of them.
    func logs(limit: Int? = 4000) -> String {
        let text = [workerLog, recorderLog].compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n---\n")
        return limit.map { String(text.suffix($0)) } ?? text
    }

    func waitFor(_ what: String, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(90)
        while await !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what); logs:\n\(logs())")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
