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
            let directory = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent()
            let environment = brain.processEnvironment
            let workerLog = directory.appendingPathComponent("worker.log").path
            let recorderLog = directory.appendingPathComponent("recorder.log").path
            let worker = try ChildProcess(
                executable: droverBinary.path,
                arguments: ["worker", "--concurrency", "2", "--lease-seconds", "5", "--drain-seconds", "5", "--hands", "in-process"],
                environment: environment, outputPath: workerLog)
            let recorder = try ChildProcess(executable: droverBinary.path, arguments: ["recorder"], environment: environment, outputPath: recorderLog)
            func logs() -> String {
                [workerLog, recorderLog].compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n---\n").suffix(4000)
                    .description
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
            var sessions: [SessionID] = []
            for round in 1...5 {
                let session = try await brain.newSession(saying: "Grade submission \(round)")
                try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)
                sessions.append(session)
                // Crash while this round's turn is under way (or queued), whatever the machine's pace.
                try await waitFor("round \(round) to start") {
                    ((try? await brain.types(session)) ?? []).count > 1
                }
                await brain.server.crash()
                try await Task.sleep(for: .milliseconds(300))
                try await brain.server.startAgain()
                #expect(worker.isRunning && recorder.isRunning, "round \(round): a process exited; logs:\n\(logs())")
            }
            for session in sessions {
                try await waitFor("\(session) to go idle") {
                    ((try? await brain.types(session)) ?? []).last == "session.status_idle"
                }
            }
            #expect(worker.isRunning, "the worker exited:\n\(logs())")
            #expect(recorder.isRunning, "the recorder exited:\n\(logs())")
            // The recorder mirrors every event once: SQLite's count per session reaches the log's.
            for session in sessions {
                let logged = try await brain.log.read(session, limit: 1000)
                try await waitFor("\(session) to be mirrored") {
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
                "unclean exit: \(String(describing: worker.exitCode)) \(String(describing: recorder.exitCode))\n\(logs())")
            let text = logs()
            #expect(text.contains("Redis is unreachable") && text.contains("Redis is back"), "outages are logged:\n\(text)")
        }
    }
}
