import DroverCore
import DroverDatabase
import DroverRedis
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

/// The session log and its recorder on a real Redis Cluster: every script runs on the master of
/// its session's shard (the server itself refuses a key of another slot), and the recorder reads
/// each shard where it lives.
@Suite("Session log on a real Redis Cluster", .serialized)
struct ClusterSessionLogTests {
    @Test("sessions on every shard: appends, fences and reads work, and a running recorder mirrors every event once")
    func sessionsOnEveryShard() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client(poolSize: 4)
            defer { client.close() }
            let path = temporaryDatabasePath()
            let database = try MirrorDatabase(path: path)
            let log = SessionLog(redis: client, database: database)
            // Enough sessions that every one of the 16 mirror shards, and so every master, has some.
            let sessions = (0..<64).map { _ in SessionID.make() }
            for session in sessions { try await log.create(session) }
            let recorder = Recorder(redis: client, database: database)
            let running = Task { try await recorder.run() }
            defer { running.cancel() }

            let written = try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, session) in sessions.enumerated() {
                    group.addTask {
                        let fence = try await log.takeFence(session, task: "task-\(index)")
                        for round in 0..<5 {
                            _ = try await log.append(
                                session, [NewEvent(.agentMessage(AgentMessage(content: [.text("s\(index) r\(round)")])))], fence: fence)
                        }
                        return 5
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(written == 320)
            let mirrored = try await eventually(within: .seconds(60)) { try await database.eventCount() == written }
            let count = try await database.eventCount()
            #expect(mirrored, "SQLite has \(count) of \(written) events")
            for session in sessions.prefix(8) {
                let events = try await log.read(session, limit: 100)
                #expect(events.map(\.seq) == [1, 2, 3, 4, 5])
                let rows = try await database.events(session: session.rawValue, afterSeq: 0, limit: 100)
                #expect(rows.map(\.seq) == events.map(\.seq))
            }
            running.cancel()
            try await finishing(within: .seconds(60)) { _ = try? await running.value }
            #expect(recorder.stats.eventsRecorded == written, "an event was recorded twice or missed: \(recorder.stats)")

            // The one-shot path (`drover recorder --once`) reads every shard in one pipeline.
            for session in sessions.prefix(16) {
                _ = try await log.append(session, [NewEvent(.agentMessage(AgentMessage(content: [.text("late")])))])
            }
            let once = Recorder(redis: client, database: database)
            #expect(try await once.runOnce() == 16)
            #expect(try await database.eventCount() == written + 16)
            // What `drover recorder status` reads, found by a SCAN over every master.
            #expect(try await Recorder.published(client)[once.options.consumer]?["events_recorded"] == "16")
        }
    }
}
