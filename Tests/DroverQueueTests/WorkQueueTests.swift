import DroverCore
import DroverSelfHosted
import DroverTesting
import Foundation
import Testing

private func withWork<T>(
    options: WorkQueue.Options = WorkQueue.Options(), _ body: (WorkQueue, String) async throws -> T
) async throws -> T {
    try await withRedisClient(poolSize: 4) { client, _ in
        try await body(WorkQueue(redis: client, options: options), Identifier.make(prefix: "env"))
    }
}

@Suite("Self-hosted work queue")
struct WorkQueueTests {
    @Test("a session has one live item; it is polled, acknowledged, and its heartbeat is fenced by the last one")
    func leaseLifecycle() async throws {
        try await withWork { work, environment in
            let session = SessionID.make()
            let first = try await work.ensure(environment: environment, session: session)
            #expect(first.created)
            #expect(try await work.ensure(environment: environment, session: session) == (first.id, false))
            #expect(try await work.stats(environment: environment).depth == 1)

            let item = try #require(try await work.poll(environment: environment, worker: "w1", wait: .zero))
            #expect(item.id == first.id && item.state == .starting && item.sessionID == session.rawValue)
            #expect(try await work.poll(environment: environment, worker: "w2", wait: .milliseconds(50)) == nil)
            #expect(try await work.acknowledge(environment: environment, id: item.id) == .done(.active))

            guard
                case .recorded(let beat) = try await work.heartbeat(
                    environment: environment, id: item.id, expected: "NO_HEARTBEAT", desiredTTLSeconds: 30)
            else {
                Issue.record("the first heartbeat was refused")
                return
            }
            #expect(beat.extended && beat.ttlSeconds == 30 && !beat.lastHeartbeat.isEmpty)
            // A second worker that also thinks it holds the lease is told it does not.
            guard
                case .preconditionFailed(let lease) = try await work.heartbeat(
                    environment: environment, id: item.id, expected: "NO_HEARTBEAT", desiredTTLSeconds: nil)
            else {
                Issue.record("a stale heartbeat was accepted")
                return
            }
            #expect(lease.lastHeartbeat == beat.lastHeartbeat && !lease.extended)
            guard
                case .recorded = try await work.heartbeat(environment: environment, id: item.id, expected: beat.lastHeartbeat, desiredTTLSeconds: nil)
            else {
                Issue.record("the holder's heartbeat was refused")
                return
            }
        }
    }

    @Test("a polled item never acknowledged goes back in line; an acknowledged one whose lease lapses waits for its results")
    func lapsedLeases() async throws {
        var options = WorkQueue.Options()
        options.leaseRange = 1...600
        try await withWork(options: options) { work, environment in
            let session = SessionID.make()
            let created = try await work.ensure(environment: environment, session: session)
            _ = try #require(try await work.poll(environment: environment, worker: "w1", wait: .zero, claimTTL: .milliseconds(100)))
            // Not acknowledged in time: the next poll takes it back and hands it out again.
            let again = try await waitFor { try await work.poll(environment: environment, worker: "w2", wait: .milliseconds(200)) }
            #expect(again.id == created.id && again.reclaims == 1)
            #expect(try await work.acknowledge(environment: environment, id: again.id) == .done(.active))
            guard case .recorded = try await work.heartbeat(environment: environment, id: again.id, expected: "NO_HEARTBEAT", desiredTTLSeconds: 1)
            else {
                Issue.record("heartbeat refused")
                return
            }
            // The worker goes quiet: past its deadline its heartbeat is refused, whatever it sends...
            let lapsed = try await waitFor {
                let found = try await work.lapsed(environment: environment)
                return found.isEmpty ? nil : found
            }
            #expect(lapsed.map(\.id) == [again.id] && lapsed.map(\.session) == [session.rawValue])
            guard case .preconditionFailed = try await work.heartbeat(environment: environment, id: again.id, expected: nil, desiredTTLSeconds: nil)
            else {
                Issue.record("a lapsed lease was renewed")
                return
            }
            // ...and nobody may claim it until its open calls are answered.
            #expect(try await work.poll(environment: environment, worker: "w3", wait: .milliseconds(50)) == nil)
            #expect(try await work.item(environment: environment, id: again.id)?.state.wire == "queued")
            try await work.settle(environment: environment, id: again.id)
            #expect(try await work.poll(environment: environment, worker: "w3", wait: .zero)?.id == again.id)
            #expect(try await work.environments().contains(environment))
        }
    }

    @Test("stops: a queued item stops at once, a running one is asked to finish, a stopped one is a conflict")
    func stops() async throws {
        try await withWork { work, environment in
            let waiting = SessionID.make()
            let queued = try await work.ensure(environment: environment, session: waiting)
            #expect(try await work.stopSession(environment: environment, session: waiting) == queued.id)
            #expect(try await work.item(environment: environment, id: queued.id)?.state == .stopped)
            #expect(try await work.stop(environment: environment, id: queued.id, force: true) == .conflict(.stopped))
            // A stopped item is no longer the session's: the next need makes a new one.
            #expect(try await work.ensure(environment: environment, session: waiting).created)

            let running = SessionID.make()
            _ = try await work.ensure(environment: environment, session: running)
            var item = try #require(try await work.poll(environment: environment, worker: "w", wait: .zero))
            while item.sessionID != running.rawValue {
                item = try #require(try await work.poll(environment: environment, worker: "w", wait: .zero))
            }
            _ = try await work.acknowledge(environment: environment, id: item.id)
            #expect(try await work.stopSession(environment: environment, session: running) == item.id)
            guard
                case .recorded(let lease) = try await work.heartbeat(environment: environment, id: item.id, expected: "stale", desiredTTLSeconds: nil)
            else {
                Issue.record("a stopping item's heartbeat was refused")
                return
            }
            #expect(lease.state == .stopping && !lease.extended)
            #expect(try await work.stop(environment: environment, id: item.id, force: true) == .done(.stopped))
            #expect(try await work.acknowledge(environment: environment, id: item.id) == .conflict(.stopped))
            #expect(try await work.updateMetadata(environment: environment, id: item.id, patch: ["a": "1", "b": nil]))
            #expect(try await work.item(environment: environment, id: item.id)?.metadata == ["a": "1"])
            #expect(try await work.items(environment: environment, offset: 0, limit: 10).count == 3)
        }
    }

    private func waitFor<T>(_ body: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let value = try await body() { return value }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CancellationError()
    }
}
