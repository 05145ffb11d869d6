import DroverCore
import DroverRedis
import DroverTesting
import Foundation
import Testing

private func dataDirectory() -> URL {
    scratchDirectory("supervise")
}

private func options(_ directory: URL) -> EmbeddedRedis.Options {
    var options = EmbeddedRedis.Options(dataDirectory: directory)
    // Every acknowledged write is on disk before the kill -9 below.
    options.appendFsync = "always"
    options.startTimeout = .seconds(60)
    return options
}

/// The embedded redis-server under `drover serve`, `worker` and `run` is started again when it
/// dies, instead of leaving every process reconnecting to nothing until a person steps in.
@Suite("Embedded Redis supervision")
struct EmbeddedRedisSupervisionTests {
    @Test("an owner starts its dead server again on its AOF; its clients carry on; stop ends the supervision")
    func ownerRestarts() async throws {
        let directory = dataDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try await EmbeddedRedis.start(options(directory))
        var clientOptions = RedisClientOptions()
        clientOptions.reconnectWindow = .seconds(60)
        let client = try await RedisClient.connect(server.url, options: clientOptions)
        defer { client.close() }
        _ = try await client.send("SET", "kept", "before the crash")
        let reports = Locked<[String]>([])
        let ended = Locked(false)
        let supervisor = Task {
            await server.keepRunning(checkingEvery: .milliseconds(50)) { line in reports.withLock { $0.append(line) } }
            ended.withLock { $0 = true }
        }

        let first = try #require(server.processIdentifier)
        await server.crash()
        #expect(try await eventually(within: .seconds(60)) { server.processIdentifier.map { $0 != first } ?? false }, "no new server process")
        let value = try await client.send("GET", "kept")
        #expect(value == .bulk(Array("before the crash".utf8)), "\(value)")
        #expect(reports.withLock { $0 }.contains { $0.contains("(pid \(first)) was killed by signal 9") }, "\(reports.withLock { $0 })")

        await server.stop(force: true)
        #expect(server.checkAndRevive() == .stopped)
        #expect(try await eventually(within: .seconds(60)) { ended.withLock { $0 } }, "supervision did not end with stop")
        #expect(!supervisor.isCancelled)
        #expect(!(await client.isReachable()), "a stopped server was started again")
    }

    @Test("a guest leaves a dead server to its live owner, and takes the server over once the owner is gone")
    func guestTakesOver() async throws {
        let directory = dataDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let owner = try await EmbeddedRedis.start(options(directory))
        let guest = try await EmbeddedRedis.start(options(directory))
        #expect(owner.isOwner && !guest.isOwner)
        var clientOptions = RedisClientOptions()
        clientOptions.reconnectWindow = .seconds(60)
        let client = try await RedisClient.connect(guest.url, options: clientOptions)
        defer { client.close() }
        _ = try await client.send("SET", "kept", "by the first server")
        #expect(guest.checkAndRevive() == .running)

        // The owner's server dies, but the owner lives and holds the lock: not the guest's to start.
        await owner.crash()
        #expect(guest.checkAndRevive() == .ownedElsewhere)
        #expect(!guest.isOwner)

        // The owner stops too (its lock is released): the guest takes the lock and starts the server.
        // A child another test forks at this moment holds the lock's file until it execs, so the
        // guest looks again, as its supervisor would, until the lock is its to take.
        await owner.stop(force: true)
        var outcome = EmbeddedRedis.Check.ownedElsewhere
        _ = try await eventually(within: .seconds(30), polling: .milliseconds(20)) {
            outcome = guest.checkAndRevive()
            return outcome != .ownedElsewhere
        }
        guard case .restarted = outcome else {
            Issue.record("the guest did not start the server: \(outcome)")
            return
        }
        #expect(guest.isOwner)
        let value = try await client.send("GET", "kept")
        #expect(value == .bulk(Array("by the first server".utf8)), "\(value)")
        #expect(guest.checkAndRevive() == .running)
        await guest.stop(force: true)
        #expect(!(await client.isReachable()))
    }
}
