import DroverBrain
import DroverCore
import DroverQueue
import DroverTesting
import Foundation
import Testing

@Suite("A worker's claims")
struct WorkerClaimTests {
    @Test("one claim loop serves every slot: eight slots wait on the queue with one connection, run a burst, and ack it while the queue is quiet")
    func oneClaimLoop() async throws {
        try await withBrain(script: "turns:\n  - text: \"Graded.\"\n    ttft_ms: 200\n") { brain in
            var options = Worker.Options()
            options.concurrency = 8
            options.workerId = "claims-test"
            let queue = TaskQueue(redis: brain.client)
            let worker = Worker(queue: queue, runner: brain.runner(), options: options)
            let running = Task { try await worker.run() }
            defer { running.cancel() }
            // Clients blocked on the queue's marker: before, one per slot.
            func waiting() async throws -> Int {
                let list = try await brain.client.send(["CLIENT", "LIST"]).string ?? ""
                return list.split(separator: "\n").filter { $0.contains("cmd=bzpopmin") }.count
            }
            try #require(try await eventually { (try? await waiting()) ?? 0 >= 1 }, "the worker never waited on the queue")
            // The slots' waits would have started by now; check a few times that no second has.
            // (None, for a moment, when the one wait ends and is sent again.)
            for _ in 0..<5 {
                #expect(try await waiting() <= 1)
                try await Task.sleep(for: .milliseconds(100))
            }

            var sessions: [SessionID] = []
            for index in 1...6 { sessions.append(try await brain.newSession(saying: "Grade submission \(index)")) }
            for session in sessions { try await TurnQueue.enqueue(queue, session: session) }
            for session in sessions {
                try #require(
                    try await eventually { ((try? await brain.types(session)) ?? []).last == "session.status_idle" }, "\(session) never went idle")
            }
            // Nothing more is enqueued: the turns ack their own leases while the claim waits.
            try #require(
                try await eventually { (try? await queue.stats(TurnQueue.defaultName))?.totals.acked == sessions.count },
                "not every lease was acked")
            let stats = try await queue.stats(TurnQueue.defaultName)
            #expect(stats.leased == 0 && stats.ready == 0, "\(stats)")

            worker.drain()
            try await running.value
        }
    }
}
