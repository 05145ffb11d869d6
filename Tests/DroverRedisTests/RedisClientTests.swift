import DroverQueue
import DroverRedis
import DroverSessionLog
import DroverTesting
import Foundation
import Testing

@Suite("Redis client")
struct RedisClientTests {
    @Test("URLs: tcp with password and db, unix with query, and the password never printed")
    func parsesURLs() throws {
        let tcp = try RedisURL(parsing: "redis://:s3cret@127.0.0.1:6380/2")
        #expect(tcp.endpoint == .tcp(host: "127.0.0.1", port: 6380))
        #expect(tcp.password == "s3cret")
        #expect(tcp.database == 2)
        #expect(!tcp.description.contains("s3cret"))

        let acl = try RedisURL(parsing: "redis://worker:pw@redis.internal")
        #expect(acl.username == "worker")
        #expect(acl.endpoint == .tcp(host: "redis.internal", port: 6379))

        let unix = try RedisURL(parsing: "unix:///run/redis.sock?db=3&password=pw")
        #expect(unix.endpoint == .unix(path: "/run/redis.sock"))
        #expect(unix.database == 3)
        #expect(unix.password == "pw")
        #expect(!unix.description.contains("pw&") && unix.description.contains("***"))
    }

    @Test(
        "malformed URLs name the problem and the fix",
        arguments: [
            ("localhost:6379", "scheme"),
            ("http://localhost", "unknown scheme"),
            ("redis://", "host is missing"),
            ("redis://localhost:99999", "out of range"),
            ("redis://localhost/abc", "not a number"),
            ("unix://relative.sock", "absolute path"),
            ("rediss://localhost", "TLS"),
            ("redis://:hunter2@localhost/x", "not a number"),
        ])
    func rejectsBadURLs(text: String, expected: String) {
        do {
            _ = try RedisURL(parsing: text)
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(error.description.contains("Fix:"))
            #expect(!error.description.contains("hunter2"))
            #expect(error.field == "DROVER_REDIS_URL")
        }
    }

    @Test("an unreachable server fails fast with a clear error")
    func unreachableServer() async throws {
        var options = RedisClientOptions()
        options.connectTimeout = .seconds(1)
        do {
            _ = try await RedisClient.connect("redis://127.0.0.1:1/0", options: options)
            Issue.record("connected to port 1")
        } catch {
            guard case .connectionFailed = error else {
                Issue.record("expected connectionFailed, got \(error)")
                return
            }
            #expect(error.description.contains("127.0.0.1:1"))
            #expect(error.description.contains("Fix:"))
        }
        do {
            _ = try await RedisClient.connect("unix:///nonexistent/redis.sock", options: options)
            Issue.record("connected to a missing socket")
        } catch {
            #expect(error.description.contains("/nonexistent/redis.sock"))
        }
    }

    @Test("a wrong password is refused without retrying, the right one works")
    func wrongPassword() async throws {
        try await withRedisServer(password: "right-password") { server in
            var url = server.url
            url.password = "wrong-password"
            do {
                _ = try await RedisClient.connect(url)
                Issue.record("a wrong password was accepted")
            } catch let error as RedisError {
                guard case .authenticationFailed = error else {
                    Issue.record("expected authenticationFailed, got \(error)")
                    return
                }
                #expect(!error.description.contains("wrong-password"))
                #expect(error.description.contains("Fix:"))
            }
            url.password = nil
            let anonymous = try await RedisClient.connect(url)
            do {
                try await anonymous.send("SET", "k", "v")
                Issue.record("a command ran without authentication")
            } catch let error as RedisError {
                guard case .serverError(let code, _) = error else {
                    Issue.record("\(error)")
                    return
                }
                #expect(code == "NOAUTH")
            }
            anonymous.close()
            url.password = "right-password"
            let client = try await RedisClient.connect(url)
            #expect(try await client.send("PING") == .status("PONG"))
            client.close()
        }
    }

    @Test("pipelines return replies in order, with errors in place")
    func pipelines() async throws {
        try await withRedisClient { client, _ in
            let replies = try await client.pipeline([
                ["SET", "a", "1"], ["INCR", "a"], ["HGET", "a", "x"], ["GET", "a"], ["GET", "missing"],
            ])
            #expect(replies.count == 5)
            #expect(replies[0] == .status("OK"))
            #expect(replies[1] == .integer(2))
            guard case .error(let message) = replies[2] else {
                Issue.record("\(replies[2])")
                return
            }
            #expect(message.hasPrefix("WRONGTYPE"))
            #expect(replies[3].string == "2")
            #expect(replies[4] == .null)
            // Binary-safe arguments: NUL bytes and non-ASCII survive the round trip.
            let odd = "nul\u{0}byte é 🐑"
            try await client.send("SET", "odd", odd)
            #expect(try await client.send("GET", "odd").string == odd)
        }
    }

    @Test("callers sharing one connection are pipelined together, and each gets its own replies, through a SCRIPT FLUSH")
    func sharedConnectionPipelines() async throws {
        try await withRedisClient(poolSize: 1) { client, _ in
            let script = RedisScript(name: "echo-key", idempotent: true, source: "return KEYS[1] .. '=' .. ARGV[1]")
            func stats() async throws -> (commands: Int64, reads: Int64) {
                let text = try await client.send("INFO", "stats").string ?? ""
                func field(_ name: String) -> Int64 {
                    text.split(separator: "\r\n").first { $0.hasPrefix(name + ":") }.flatMap { Int64($0.dropFirst(name.count + 1)) } ?? -1
                }
                return (field("total_commands_processed"), field("total_reads_processed"))
            }
            let before = try await stats()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<300 {
                    group.addTask {
                        if caller == 150 { try await client.send("SCRIPT", "FLUSH") }
                        try await client.send("SET", "k\(caller)", "v\(caller)")
                        let replies = try await client.pipeline([["GET", "k\(caller)"], ["STRLEN", "k\(caller)"], ["HGET", "k\(caller)", "x"]])
                        #expect(replies[0].string == "v\(caller)")
                        #expect(replies[1] == .integer(Int64("v\(caller)".utf8.count)))
                        #expect(replies[2].isNull == false, "an error reply stays in its place: \(replies[2])")
                        #expect(try await client.eval(script, keys: ["k\(caller)"], arguments: ["\(caller)"]).string == "k\(caller)=\(caller)")
                    }
                }
                try await group.waitForAll()
            }
            let after = try await stats()
            // Each caller makes three requests (a SET, a pipeline, a script): with a read for each,
            // every request went out alone, as it did before connections were shared.
            let reads = after.reads - before.reads
            #expect(reads > 0 && reads < 300 * 3, "reads \(reads), commands \(after.commands - before.commands)")
        }
    }

    @Test("scripts run by SHA and are loaded again after SCRIPT FLUSH")
    func scriptsReloadOnNoScript() async throws {
        try await withRedisClient { client, _ in
            let script = RedisScript(name: "incr-by", idempotent: false, source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try await client.eval(script, keys: ["n"], arguments: ["5"]) == .integer(5))
            try await client.send("SCRIPT", "FLUSH")
            #expect(try await client.eval(script, keys: ["n"], arguments: ["2"]) == .integer(7))
            let broken = RedisScript(name: "broken", idempotent: false, source: "return redis.call('NOPE')")
            do {
                _ = try await client.eval(broken, keys: [], arguments: [])
                Issue.record("a failing script succeeded")
            } catch let error as RedisError {
                guard case .serverError = error else {
                    Issue.record("\(error)")
                    return
                }
            }
        }
    }

    @Test("a blocking read ends at once when its task is cancelled, and the connection recovers")
    func blockingReadCancels() async throws {
        try await withRedisClient { client, _ in
            let blocking = client.blockingConnection()
            defer { blocking.close() }
            // An hour-long BLPOP: a lost cancellation runs far past the 60 s limit.
            let waiter = Task { try await blocking.send(["BLPOP", "never", "3600"]) }
            try await Task.sleep(for: .milliseconds(100))
            waiter.cancel()
            let result = try await finishing(within: .seconds(60)) { await waiter.result }
            #expect(throws: CancellationError.self) { try result.get() }
            try await client.send("RPUSH", "list", "x")
            let popped = try await blocking.send(["BLPOP", "list", "5"])
            #expect(popped.array?.last?.string == "x")
        }
    }

    @Test("a blocking read cancelled at any moment, even before its connection is open, ends at once")
    func blockingReadCancelsEarly() async throws {
        // Cancelling 0-20 ms after the send lands before, during and after the lazy connect and
        // the command write. A cancellation lost in any of those windows would run the full hour.
        try await withRedisClient { client, _ in
            try await finishing(within: .seconds(60)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for delay in [0, 1, 2, 5, 10, 20] {
                        group.addTask {
                            let blocking = client.blockingConnection(name: "early-\(delay)")
                            defer { blocking.close() }
                            let waiter = Task { try await blocking.send(["BLPOP", "never-\(delay)", "3600"]) }
                            try await Task.sleep(for: .milliseconds(delay))
                            waiter.cancel()
                            let result = await waiter.result
                            #expect(throws: CancellationError.self, "cancelled after \(delay) ms") { try result.get() }
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }

    @Test("the client reconnects by itself after Redis restarts")
    func reconnects() async throws {
        try await withRedisClient(poolSize: 2) { client, server in
            try await client.send("SET", "survives", "yes")
            try await server.restart()
            #expect(try await client.send(["GET", "survives"], idempotent: true).string == "yes")
        }
    }

    /// A claim script cut off by a restart throws `TaskQueueError.redis(.connectionLost)`; the
    /// worker once took that for a fatal error and `drover serve` exited 1.
    @Test("an outage is recognised inside the queue's and the session log's errors, a refused command is not")
    func outageThroughWrappers() {
        let lost = RedisError.connectionLost(endpoint: "unix:///x", reason: "Connection reset by peer")
        #expect(RedisOutage.isOutage(lost))
        #expect(RedisOutage.isOutage(TaskQueueError.redis(lost)))
        #expect(RedisOutage.isOutage(SessionLogError.redis(lost)))
        #expect(!RedisOutage.isOutage(TaskQueueError.redis(.serverError(code: "ERR", message: "unknown command"))))
        #expect(!RedisOutage.isOutage(TaskQueueError.unexpectedReply("nil")))
        #expect(!RedisOutage.isOutage(CancellationError()))
    }
}
