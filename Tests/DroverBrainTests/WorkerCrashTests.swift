import DroverBrain
import DroverCore
import DroverQueue
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@Suite("Worker processes killed mid-turn")
struct WorkerCrashTests {
    @Test("drover worker with no model key says first that the scripted model answers, and answers from the built-in script")
    func keylessWorker() async throws {
        try await withBrain(script: "turns: [{text: unused}]") { brain in
            var environment = brain.processEnvironment
            environment.removeValue(forKey: "ANTHROPIC_API_KEY")
            environment.removeValue(forKey: "ANTHROPIC_BASE_URL")
            let log = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent().appendingPathComponent("worker.log").path
            let worker = try ChildProcess(
                executable: droverBinary.path, arguments: ["worker", "--concurrency", "1", "--hands", "in-process"], environment: environment,
                outputPath: log)
            let session = try await brain.newSession(saying: "What is in notes.md?")
            try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)
            let idle = try await eventually(within: .seconds(60), polling: .milliseconds(50)) {
                try await brain.types(session).last == "session.status_idle"
            }
            #expect(idle, "the session did not go idle")
            await worker.terminate(grace: .seconds(15))
            #expect(worker.exitStatus == 0)
            let output = try String(contentsOfFile: log, encoding: .utf8)
            #expect(output.hasPrefix("drover worker: model: the scripted model (the built-in script"), "\(output)")
            let events = try await brain.log.read(session, limit: 100)
            // In-process hands have no bash or read: the calls get error results, which the reply reports.
            let uses = events.filter { $0.type == "agent.tool_use" }.compactMap { $0.value.objectValue?["name"]?.stringValue }
            #expect(uses == ["bash", "read"])
            let reply = events.last { $0.type == "agent.message" }?.json ?? ""
            #expect(reply.contains("[scripted] Drover's scripted model") && reply.contains("read: /workspace/notes.md"), "\(reply)")
        }
    }

    @Test("kill -9 a worker mid model stream, then another mid tool call: a third finishes the session cleanly")
    func killMidTurn() async throws {
        try await withBrain(
            script: """
                turns:
                  - text: "Reading the submission carefully."
                    ttft_ms: 1500
                    tool_use: {name: sleep, input: {seconds: 5}}
                  - text: "Done grading."
                """
        ) { brain in
            let directory = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent()
            let environment = brain.processEnvironment
            var logs: [String] = []
            func startWorker(_ name: String) throws -> ChildProcess {
                let log = directory.appendingPathComponent("\(name).log").path
                logs.append(log)
                return try ChildProcess(
                    executable: droverBinary.path,
                    arguments: ["worker", "--concurrency", "2", "--lease-seconds", "2", "--drain-seconds", "2", "--hands", "in-process"],
                    environment: environment, outputPath: log
                )
            }
            func waitFor(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
                let deadline = ContinuousClock.now + timeout
                while try await !condition() {
                    if ContinuousClock.now > deadline {
                        let output = logs.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }.joined(separator: "\n---\n")
                        Issue.record("timed out waiting for \(what); worker logs:\n\(output.suffix(3000))")
                        throw CancellationError()
                    }
                    try await Task.sleep(for: .milliseconds(25))
                }
            }

            let session = try await brain.newSession(saying: "Grade submission 12")
            try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)

            let first = try startWorker("a")
            try await waitFor("the first model request") { try await brain.types(session).contains("span.model_request_start") }
            try await Task.sleep(for: .milliseconds(300))  // inside the 1.5 s before the first token
            await first.kill()

            let second = try startWorker("b")
            try await waitFor("the tool call") { try await brain.types(session).contains("agent.tool_use") }
            try await Task.sleep(for: .milliseconds(500))  // inside the 5 s sleep tool
            await second.kill()

            let third = try startWorker("c")
            try await waitFor("the session to go idle") { try await brain.types(session).last == "session.status_idle" }
            await third.terminate(grace: .seconds(15))
            #expect(third.exitStatus == 0, "worker c did not drain cleanly")

            let events = try await brain.log.read(session, limit: 1000)
            expectWireShapes(events)
            // Every tool use has exactly one result; the one cut off by the kill is an error.
            let uses = events.filter { $0.type == "agent.tool_use" }
            #expect(uses.count == 1)
            for use in uses {
                let results = events.filter { $0.type == "agent.tool_result" && $0.value.objectValue?["tool_use_id"]?.stringValue == use.id }
                #expect(results.count == 1)
                #expect(results.first?.json.contains(TurnRunner.crashInterruption) == true)
            }
            // No message twice, and the stream cut off in the first worker never landed.
            let messages = events.filter { $0.type == "agent.message" }.map(\.json)
            #expect(messages.filter { $0.contains("Reading the submission") }.count == 1)
            #expect(messages.filter { $0.contains("Done grading") }.count == 1)
            // Every model request is closed exactly once.
            let starts = events.filter { $0.type == "span.model_request_start" }.map(\.id)
            let ends = events.filter { $0.type == "span.model_request_end" }.compactMap {
                $0.value.objectValue?["model_request_start_id"]?.stringValue
            }
            #expect(starts.count == 3 && Set(ends) == Set(starts) && ends.count == starts.count)

            // No write from a dead worker's epoch after a newer one wrote: epochs never go back.
            try await Recorder(redis: brain.client, database: brain.database).runOnce()
            let epochs = try await brain.database.epochs(session: session.rawValue)
            #expect(epochs.count == events.count)
            #expect(epochs == epochs.sorted(), "epochs in seq order: \(epochs)")
            #expect(Set(epochs.filter { $0 > 0 }).count == 3, "three workers each wrote under their own fence: \(epochs)")
            let stats = try await TaskQueue(redis: brain.client).stats(TurnQueue.defaultName)
            #expect(stats.leased == 0 && stats.ready == 0 && stats.dead == 0)
            #expect(stats.totals.acked == 1)
        }
    }
}

@Suite("Worker drain")
struct WorkerDrainTests {
    @Test("SIGTERM during a tool call hands the lease back at once: another worker resumes before the lease could expire")
    func drainHandsBack() async throws {
        try await withBrain(
            script: """
                turns:
                  - tool_use: {name: sleep, input: {seconds: 3600}}
                  - text: "Resumed elsewhere."
                """
        ) { brain in
            let environment = brain.processEnvironment
            let directory = URL(fileURLWithPath: brain.database.path).deletingLastPathComponent()
            func startWorker(_ name: String) throws -> ChildProcess {
                try ChildProcess(
                    executable: droverBinary.path,
                    // A 600 s lease: if the drain did not hand it back, nobody could resume within the test.
                    arguments: ["worker", "--concurrency", "1", "--lease-seconds", "600", "--drain-seconds", "1", "--hands", "in-process"],
                    environment: environment, outputPath: directory.appendingPathComponent("\(name).log").path
                )
            }
            let session = try await brain.newSession(saying: "long job")
            try await TurnQueue.enqueue(TaskQueue(redis: brain.client), session: session)
            let first = try startWorker("a")
            #expect(
                try await eventually(within: .seconds(60), polling: .milliseconds(25)) { try await brain.types(session).contains("agent.tool_use") })
            first.signal(SIGTERM)
            // The tool sleeps an hour: the worker exiting at all is the drain cutting it short.
            #expect(
                try await eventually(within: .seconds(60), polling: .milliseconds(25)) { !first.isRunning },
                "the drain did not cut the hour-long tool short")
            #expect(first.exitStatus == 0)

            let second = try startWorker("b")
            #expect(
                try await eventually(within: .seconds(60), polling: .milliseconds(25)) {
                    try await brain.types(session).last == "session.status_idle"
                })
            await second.terminate()
            let events = try await brain.log.read(session, limit: 1000)
            #expect(events.last?.type == "session.status_idle")
            let results = events.filter { $0.type == "agent.tool_result" }
            #expect(results.count == 1)
            #expect(results.first?.json.contains(TurnRunner.crashInterruption) == true)
            #expect(events.contains { $0.type == "agent.message" && $0.json.contains("Resumed elsewhere.") })
            expectWireShapes(events)
        }
    }
}
