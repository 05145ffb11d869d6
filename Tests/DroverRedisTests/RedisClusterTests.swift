import DroverCore
import DroverRedis
import DroverTesting
import Foundation
import Testing

/// Keys that hash to `slot`, made by trying suffixes: for putting keys where a test wants them.
private func keys(inSlot slot: Int, count: Int, prefix: String = "k") -> [String] {
    var found: [String] = []
    var index = 0
    while found.count < count {
        let key = "\(prefix)\(index)"
        if RedisHashSlot.of(key) == slot { found.append(key) }
        index += 1
    }
    return found
}

/// A node's count of one error reply (`INFO errorstats`: `errorstat_MOVED:count=3`).
private func errorCount(_ code: String, on client: RedisClient) async throws -> Int {
    let info = try await client.send(["INFO", "errorstats"]).string ?? ""
    for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("errorstat_\(code):count=") {
        return Int(line.split(separator: "=")[1].split(separator: ",")[0]) ?? 0
    }
    return 0
}

@Suite("Redis client: cluster URLs and slots")
struct RedisClusterUnitTests {
    @Test("cluster URLs: several seeds, IPv6, a password that is never printed, and bad parts named")
    func parsesClusterURLs() throws {
        let url = try RedisURL(parsing: "redis+cluster://:s3cret@10.0.0.1:7000,[::1]:7001,redis-3")
        #expect(url.isCluster)
        #expect(url.clusterSeeds == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "::1", port: 7001), .tcp(host: "redis-3", port: 6379)])
        #expect(url.password == "s3cret" && url.username == nil)
        #expect(url.description == "redis+cluster://:***@10.0.0.1:7000,[::1]:7001,redis-3:6379")
        #expect(url.node(.tcp(host: "10.0.0.9", port: 7005)).password == "s3cret")
        #expect(!(try RedisURL(parsing: "redis://localhost")).isCluster)

        for (text, expected) in [
            ("redis+cluster://a:7000,:7001", "host is missing"),
            ("redis+cluster://a:7000,b:x", "'x' of b is not a number"),
            ("redis+cluster://a:7000/2", "only database 0"),
            ("redis+cluster://", "host is missing"),
        ] {
            #expect {
                try RedisURL(parsing: text)
            } throws: { error in
                let description = "\(error)"
                return description.contains(expected) && description.contains("redis+cluster://") && description.contains("Fix:")
            }
        }
        #expect {
            try RedisURL(parsing: "redis+cluster://:hunter2@a:7000,b:bad")
        } throws: { error in !"\(error)".contains("hunter2") }
    }

    @Test("hash slots: CRC16 of the key, or of its hash tag, as Redis Cluster computes them")
    func hashSlots() {
        // The reference value from the Redis Cluster specification.
        #expect(RedisHashSlot.of("123456789") == 0x31C3)
        #expect(RedisHashSlot.of("{user1000}.following") == RedisHashSlot.of("user1000"))
        #expect(RedisHashSlot.of("foo{}{bar}") != RedisHashSlot.of("bar"), "an empty tag hashes the whole key")
        #expect(RedisHashSlot.of("foo{{bar}}zap") == RedisHashSlot.of("{bar"))
        #expect(RedisHashSlot.of("drover:{q:batch}:ready") == RedisHashSlot.of("drover:{q:batch}:task:1"))
    }

    @Test("a script whose keys span slots is refused before it is sent, on a single server too")
    func crossSlotScriptRefused() async throws {
        try await withRedisClient { client, _ async throws in
            let script = RedisScript(
                name: "two-keys", idempotent: true, source: "redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 1); return 1")
            await #expect {
                try await client.eval(script, keys: ["{a}:x", "{b}:y"], arguments: [])
            } throws: { error in
                guard case RedisError.crossSlot(let command, let keys) = error else { return false }
                return command == "script two-keys" && keys == ["{a}:x", "{b}:y"] && "\(error)".contains("hash tag")
            }
            #expect(try await client.send(["EXISTS", "{a}:x"]).int == 0, "the refused script ran")
            // Keys of one tag are fine.
            #expect(try await client.eval(script, keys: ["{a}:x", "{a}:y"], arguments: []).int == 1)
        }
    }

    @Test("a cluster URL that points at a single server says so and how to fix it")
    func singleServerIsNotACluster() async throws {
        // A TCP port below the kernel's ephemeral range (from 32768), where no other test's
        // server or connection is handed one; tried again on another should it be taken.
        var started: RedisServerFixture?
        for _ in 0..<5 where started == nil {
            started = try? await RedisServerFixture.start(tcpPort: Int.random(in: 8000...11000))
        }
        let tcp = try #require(started, "no single server could start on a TCP port")
        guard case .tcp(let host, let port) = tcp.url.endpoint else {
            await tcp.shutdown()
            return
        }
        await #expect {
            try await RedisClient.connect("redis+cluster://\(host):\(port)")
        } throws: { error in
            guard case RedisError.clusterUnavailable = error else { return false }
            return "\(error)".contains("single server") && "\(error)".contains("Fix:")
        }
        await tcp.shutdown()
    }
}

@Suite("Redis client on a real Redis Cluster", .serialized)
struct RedisClusterTests {
    @Test("commands and pipelines go to the master of each key's slot; every master gets its share")
    func routesBySlot() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client()
            defer { client.close() }
            #expect(client.isCluster)
            let keys = (0..<600).map { "key:\($0)" }
            let replies = try await client.pipeline(keys.map { ["SET", $0, "v-\($0)"] })
            #expect(replies.allSatisfy { $0 == .status("OK") }, "\(replies.filter { $0 != .status("OK") }.prefix(3))")
            for key in keys.prefix(50) {
                #expect(try await client.send(["GET", key]).string == "v-\(key)")
            }
            let values = try await client.pipeline(keys.map { ["GET", $0] })
            #expect(values.map(\.string) == keys.map { "v-\($0)" })
            // Each master holds its keys, and only those.
            var total = 0
            for port in cluster.ports {
                let node = try await cluster.nodeClient(port)
                defer { node.close() }
                let role = try await node.send(["ROLE"]).array?.first?.string
                guard role == "master" else { continue }
                let size = try await node.send(["DBSIZE"]).int ?? 0
                #expect(size > 100, "master \(port) holds \(size) of 600 keys")
                total += Int(size)
            }
            #expect(total == 600)
            let scanned = try await client.scanKeys(matching: "key:*")
            #expect(Set(scanned) == Set(keys), "SCAN over every master")
            #expect(try await client.sendToEveryNode(["PING"]).count == 3)
            // The client's slot rule is the server's, for tags, odd bytes and long keys alike.
            let samples =
                ["", "{", "}{", "a{b}c", "{{x}}", "é{ü}", "drover:{sm:7}:mirror", String(repeating: "z", count: 300)]
                + (0..<100).map { _ in String((0..<Int.random(in: 1...20)).map { _ in "ab{}:x\u{7f}é".randomElement()! }) }
            for key in samples {
                #expect(try await client.send(["CLUSTER", "KEYSLOT", key]).int == Int64(RedisHashSlot.of(key)), "\(key.debugDescription)")
            }
            #expect(await client.isReachable())
        }
    }

    @Test("scripts run on the master of their keys, loaded there on first use; cross-slot keys are refused")
    func scriptsPerNode() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client()
            defer { client.close() }
            let script = RedisScript(name: "incr-both", idempotent: false, source: "return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])")
            for tag in 0..<30 {
                #expect(try await client.eval(script, keys: ["{t\(tag)}:a", "{t\(tag)}:b"], arguments: []).int == 2)
            }
            await #expect(throws: RedisError.crossSlot(command: "script incr-both", keys: ["{t1}:a", "{t2}:b"])) {
                try await client.eval(script, keys: ["{t1}:a", "{t2}:b"], arguments: [])
            }
            // A Lua script that reaches for an undeclared key in another slot fails on the cluster
            // itself: the server, not only the client, keeps scripts to one slot.
            let sneaky = RedisScript(name: "sneaky", idempotent: false, source: "return redis.call('GET', ARGV[1])")
            let other = keys(inSlot: (RedisHashSlot.of("{t1}:a") + 8000) % RedisHashSlot.count, count: 1)[0]
            await #expect(throws: RedisError.self) {
                try await client.eval(sneaky, keys: ["{t1}:a"], arguments: [other])
            }
        }
    }

    @Test("a slot moved behind the client's back: MOVED is followed and the map read again; ASK mid-migration too")
    func followsRedirections() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client()
            defer { client.close() }
            let slot = RedisHashSlot.of("moving")
            let movingKeys = keys(inSlot: slot, count: 4, prefix: "m")
            for key in movingKeys { try await client.send(["SET", key, "was-\(key)"]) }
            let sourcePort = try #require(try await cluster.masterPort(ofSlot: slot))
            let targetPort = try #require(try await cluster.masterPort(ofSlot: (slot + RedisHashSlot.count / 3) % RedisHashSlot.count))
            #expect(sourcePort != targetPort)
            let source = try await cluster.nodeClient(sourcePort)
            let target = try await cluster.nodeClient(targetPort)
            defer {
                source.close()
                target.close()
            }
            let sourceID = try #require(try await source.send(["CLUSTER", "MYID"]).string)
            let targetID = try #require(try await target.send(["CLUSTER", "MYID"]).string)

            // Half-way through a migration: one key has gone to the target, the rest have not.
            try await target.send(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID])
            try await source.send(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID])
            try await source.send(["MIGRATE", "127.0.0.1", String(targetPort), "", "0", "5000", "KEYS", movingKeys[0]])
            let asksBefore = try await errorCount("ASK", on: source)
            #expect(try await client.send(["GET", movingKeys[0]]).string == "was-\(movingKeys[0])", "the migrated key, through ASK")
            #expect(try await client.send(["GET", movingKeys[1]]).string == "was-\(movingKeys[1])", "a key not migrated yet")
            #expect(try await errorCount("ASK", on: source) > asksBefore, "the source never answered ASK")

            // The migration ends: every key moves and every master learns the slot's new owner.
            try await source.send(["MIGRATE", "127.0.0.1", String(targetPort), "", "0", "5000", "KEYS"] + Array(movingKeys.dropFirst()))
            for port in cluster.ports {
                let node = try await cluster.nodeClient(port)
                defer { node.close() }
                if try await node.send(["ROLE"]).array?.first?.string == "master" {
                    try await node.send(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID])
                }
            }
            let movedBefore = try await errorCount("MOVED", on: source)
            let replies = try await client.pipeline(movingKeys.map { ["GET", $0] } + [["SET", movingKeys[0], "now"]])
            #expect(replies.prefix(4).map(\.string) == movingKeys.map { "was-\($0)" })
            #expect(replies.last == .status("OK"))
            #expect(try await errorCount("MOVED", on: source) > movedBefore, "the source never answered MOVED")
            #expect(try await target.send(["GET", movingKeys[0]]).string == "now", "the write went to the new owner")

            // A blocking read lands on the new owner too.
            let popper = client.blockingConnection(name: "pop")
            defer { popper.close() }
            let queueKey = keys(inSlot: slot, count: 1, prefix: "z")[0]
            try await client.send(["ZADD", queueKey, "1", "member"])
            let popped = try await popper.send(["BZPOPMIN", queueKey, "5"])
            #expect(popped.array?.map(\.string) == [queueKey, "member", "1"])
        }
    }

    @Test("a master killed with SIGKILL: its replica takes over, and the client carries on without a restart")
    func survivesFailover() async throws {
        try await withRedisCluster { cluster in
            let client = try await cluster.client(reconnectWindow: .seconds(60))
            defer { client.close() }
            let slot = RedisHashSlot.of("{failover}")
            let masterPort = try #require(try await cluster.masterPort(ofSlot: slot))
            // Written through the master and confirmed by its replica (WAIT), so the takeover
            // cannot lose it to asynchronous replication.
            let master = try await cluster.nodeClient(masterPort)
            try await master.send(["SET", "{failover}:before", "kept"])
            #expect(try await master.send(["WAIT", "1", "10000"]).int == 1, "the replica never confirmed the write")
            master.close()
            let blocking = client.blockingConnection(name: "failover")
            defer { blocking.close() }

            await cluster.kill(port: masterPort)
            // Commands sent during the takeover wait for it, within the reconnect window.
            #expect(try await client.send(["GET", "{failover}:before"], idempotent: true).string == "kept")
            try await client.send(["SET", "{failover}:after", "written"])
            #expect(try await client.pipeline([["GET", "{failover}:after"], ["GET", "elsewhere"]], idempotent: true)[0].string == "written")
            let newMaster = try #require(try await cluster.masterPort(ofSlot: slot))
            #expect(newMaster != masterPort)
            try await client.send(["ZADD", "{failover}:z", "1", "m"])
            #expect(try await blocking.send(["BZPOPMIN", "{failover}:z", "5"]).array?.count == 3, "the blocking connection found the new master")
            #expect(try await cluster.waitUntilServing(slot: slot))
        }
    }
}
