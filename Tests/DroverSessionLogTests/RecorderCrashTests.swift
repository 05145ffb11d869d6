import DroverCore
import DroverDatabase
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@Suite("Recorder crash")
struct RecorderCrashTests {
    @Test("kill -9 the recorder while events stream in, restart it: SQLite holds every event exactly once")
    func killAndRestart() async throws {
        try await withRedisClient(poolSize: 8) { client, server in
            let databasePath = temporaryDatabasePath()
            defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: databasePath).deletingLastPathComponent().path) }
            let database = try MirrorDatabase(path: databasePath)
            let log = SessionLog(redis: client, database: database)
            var environment = ProcessInfo.processInfo.environment
            environment["DROVER_REDIS_URL"] = server.url.description
            environment["DROVER_DB"] = databasePath
            func startRecorder() throws -> ChildProcess {
                try ChildProcess(
                    executable: droverBinary.path,
                    arguments: ["recorder", "run", "--batch-size", "50"],
                    environment: environment,
                    outputPath: URL(fileURLWithPath: databasePath).deletingLastPathComponent().appendingPathComponent("recorder.log").path
                )
            }

            let sessions = (0..<20).map { _ in SessionID.make() }
            for session in sessions { try await log.create(session) }
            let appended = Locked([String: Int]())
            func appendBatches(_ range: Range<Int>) async throws {
                for round in range {
                    let session = sessions[round % sessions.count]
                    let events = (0..<10).map { n in
                        NewEvent(.agentMessage(AgentMessage(content: [.text("r\(round)-\(n)")])))
                    }
                    _ = try await log.append(session, events)
                    appended.withLock { $0[session.rawValue, default: 0] += 10 }
                }
            }

            var recorder = try startRecorder()
            let producer = Task { try await appendBatches(0..<400) }
            // Kill it once it is well into the stream, while appends keep coming.
            let deadline = ContinuousClock.now + .seconds(60)
            while try await database.eventCount() < 300 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            await recorder.kill()
            let atKill = try await database.eventCount()
            try await producer.value
            #expect(atKill > 0, "the recorder never recorded anything before the kill")
            #expect(atKill < appended.value.values.reduce(0, +), "the recorder had caught up before the kill; nothing was in flight")

            recorder = try startRecorder()
            try await appendBatches(400..<500)
            let total = appended.value.values.reduce(0, +)
            while try await database.eventCount() < total && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            await recorder.terminate(grace: .seconds(10))
            #expect(recorder.exitStatus == 0, "graceful shutdown exit status \(String(describing: recorder.exitStatus))")

            #expect(try await database.eventCount() == total)
            for session in sessions {
                let expected = appended.value[session.rawValue] ?? 0
                let rows = try await database.events(session: session.rawValue, afterSeq: 0, limit: 100_000)
                #expect(rows.map(\.seq) == (1...Int64(expected)).map { $0 })
                #expect(Set(rows.map(\.id)).count == expected)
            }
            #expect(try await Recorder.backlog(client) == 0)
        }
    }
}
