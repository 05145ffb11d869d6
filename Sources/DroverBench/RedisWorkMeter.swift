import DroverCore
import DroverRedis
import Foundation

/// What one phase of a benchmark cost the Redis server, from `INFO commandstats` and `INFO cpu`
/// read before and after. Redis runs commands on one core that every worker host shares, so
/// its work per task is what caps a whole deployment, whatever one client measures.
struct RedisWork: Encodable {
    /// Commands Redis executed, counting each `redis.call` inside a script and the `EVALSHA`
    /// itself, as `INFO commandstats` does; the meter's own `INFO` calls are left out.
    let commands: Int
    /// The server process's user and system CPU, its background threads (AOF fsync) included.
    let cpuMs: Double
    let commandsPerTask: Double
    let cpuUsPerTask: Double

    enum CodingKeys: String, CodingKey {
        case commands
        case cpuMs = "cpu_ms"
        case commandsPerTask = "commands_per_task"
        case cpuUsPerTask = "cpu_us_per_task"
    }
}

struct RedisWorkMeter {
    struct Reading {
        let commands: Int
        let cpuSeconds: Double
    }

    let redis: RedisClient

    func read() async throws -> Reading {
        let replies = try await redis.pipeline([["INFO", "commandstats"], ["INFO", "cpu"]], idempotent: true)
        let calls = RedisInfo.commandCalls(replies.first?.string ?? "")
        let cpu = RedisInfo.fields(replies.count > 1 ? replies[1].string ?? "" : "")
        let commands = calls.filter { $0.key != "info" }.values.reduce(0, +)
        let cpuSeconds = ["used_cpu_sys", "used_cpu_user"].compactMap { cpu[$0].flatMap(Double.init) }.reduce(0, +)
        return Reading(commands: commands, cpuSeconds: cpuSeconds)
    }

    /// The work between two readings, per task. The second reading's own `INFO` is not counted.
    static func work(from before: Reading, to after: Reading, tasks: Int) -> RedisWork {
        let commands = after.commands - before.commands
        let cpuMs = (after.cpuSeconds - before.cpuSeconds) * 1000
        let perTask = Double(max(tasks, 1))
        return RedisWork(
            commands: commands, cpuMs: round3(cpuMs), commandsPerTask: round3(Double(commands) / perTask),
            cpuUsPerTask: round3(cpuMs * 1000 / perTask))
    }
}

/// `redis-benchmark -c CLIENTS -t set` against the server a benchmark uses, in the same run: the
/// rate of single round trips with that many clients, the ceiling a queue that needs one round
/// trip per operation could reach.
enum RedisSetBaseline {
    struct Result: Encodable {
        let clients: Int
        let requests: Int
        let perSecond: Double?
        /// Why there is no figure, when there is none.
        let skipped: String?

        enum CodingKeys: String, CodingKey {
            case clients, requests, skipped
            case perSecond = "per_second"
        }

        /// Both keys always, null when empty, so a reader finds them in every report.
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(clients, forKey: .clients)
            try container.encode(requests, forKey: .requests)
            try container.encode(perSecond, forKey: .perSecond)
            try container.encode(skipped, forKey: .skipped)
        }
    }

    /// The one key redis-benchmark's SET test writes.
    static let key = "key:__rand_int__"

    static func measure(url: RedisURL, clients: Int, requests: Int) async -> Result {
        func skipped(_ reason: String) -> Result { Result(clients: clients, requests: requests, perSecond: nil, skipped: reason) }
        guard let executable = ["/usr/bin/redis-benchmark", "/usr/local/bin/redis-benchmark"].first(where: FileManager.default.isExecutableFile)
        else { return skipped("redis-benchmark is not installed (Debian: apt-get install redis-tools)") }
        // redis-benchmark takes a password only on its command line, where any local user can read
        // it in the process list: it runs only against a server without one, such as the embedded.
        guard url.password == nil else {
            return skipped("the server has a password, and redis-benchmark would show it in the process list")
        }
        // Without -r every SET writes the one key `key:__rand_int__`, deleted afterwards by the caller.
        var arguments = ["-c", String(clients), "-n", String(requests), "-t", "set", "--csv", "--dbnum", String(url.database)]
        switch url.endpoint {
        case .tcp(let host, let port): arguments += ["-h", host, "-p", String(port)]
        case .unix(let path): arguments += ["-s", path]
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("drover-redis-benchmark-\(getpid()).csv")
        defer { try? FileManager.default.removeItem(at: output) }
        FileManager.default.createFile(atPath: output.path, contents: nil)
        do {
            let child = try ChildProcess(executable: executable, arguments: arguments, outputPath: output.path)
            let code = await child.exitCodeWhenDone(polling: .milliseconds(20))
            guard code == 0 else { return skipped("redis-benchmark exited with \(code)") }
        } catch {
            return skipped("redis-benchmark did not start: \(error)")
        }
        // --csv prints a header, then "SET","<requests per second>",...; progress lines before it
        // end in a carriage return, not a newline.
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) where line.hasPrefix("\"SET\"") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            if fields.count > 1, let rate = Double(fields[1]) { return Result(clients: clients, requests: requests, perSecond: rate, skipped: nil) }
        }
        return skipped("redis-benchmark printed no SET figure")
    }
}
