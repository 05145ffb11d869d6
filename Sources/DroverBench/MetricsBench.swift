import ArgumentParser
import DroverCore
import DroverMetrics
import DroverQueue
import DroverRedis
import DroverRuntime
import Foundation

/// What `--metrics on` means in a benchmark: metrics recorded as `drover serve` records them, and
/// scraped every second (fifteen times Prometheus' usual rate), samplers included.
enum BenchMetrics: String, ExpressibleByArgument, Sendable {
    case on, off

    /// Bootstraps the backend when on, and starts the scraper. Before any metric is made.
    func start(redis: RedisClient? = nil) -> (exposition: MetricsExposition?, scraper: Task<Void, Never>?) {
        guard self == .on else { return (nil, nil) }
        let exposition = MetricsExposition.bootstrap()
        if let redis {
            let queue = TaskQueue(redis: redis)
            exposition.addSampler { await QueueMetrics.sample(queue) }
        }
        let scraper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                _ = await exposition.scrape()
            }
        }
        return (exposition, scraper)
    }
}

/// `drover bench metrics`: the cost of keeping metrics, as `bench queue` and `bench api` measure
/// it with metrics on and off. swift-metrics binds its backend once per process, so each side
/// runs in a process of its own; the sides alternate, round by round, so that a machine that
/// gets busier or quieter meanwhile weighs on both alike.
struct MetricsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "The cost of metrics: bench queue and bench api with metrics on and off, alternating, medians and ratios.")

    @Option(help: "Rounds; each runs both benchmarks with metrics on and with them off.") var rounds = 5
    @Option(help: "Tasks per bench queue run.") var tasks = 20_000
    @Option(help: "Sends per bench api run.") var sends = 500

    func validate() throws {
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1 to 50") }
    }

    func run() async throws {
        try await reportingErrors {
            var claimAck: [BenchMetrics: [Double]] = [:]
            var sendP50: [BenchMetrics: [Double]] = [:]
            for round in 0..<rounds {
                // Which side goes first alternates too.
                for side in round % 2 == 0 ? [BenchMetrics.on, .off] : [.off, .on] {
                    let queue = try runChild(["bench", "queue", "--tasks", String(tasks), "--idle-samples", "50", "--metrics", side.rawValue])
                    claimAck[side, default: []].append(queue["claim_ack"]?.objectValue?["per_second"]?.doubleValue ?? .nan)
                    let api = try runChild([
                        "bench", "api", "--sends", String(sends), "--subscribers", "10", "--events", "5", "--metrics", side.rawValue,
                    ])
                    sendP50[side, default: []].append(api["send"]?.objectValue?["p50_ms"]?.doubleValue ?? .nan)
                }
            }
            func median(_ values: [Double]) -> Double { round3(percentile(values.sorted(), 50)) }
            let (queueOn, queueOff) = (median(claimAck[.on] ?? []), median(claimAck[.off] ?? []))
            let (apiOn, apiOff) = (median(sendP50[.on] ?? []), median(sendP50[.off] ?? []))
            print(
                try encodeJSON(
                    JSONValue.object([
                        "benchmark": "metrics", "rounds": .number(Double(rounds)),
                        "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                        "queue_claim_ack_per_second": .object([
                            "metrics_on": .array((claimAck[.on] ?? []).map { .number(round3($0)) }),
                            "metrics_off": .array((claimAck[.off] ?? []).map { .number(round3($0)) }),
                            "median_on": .number(queueOn), "median_off": .number(queueOff),
                            "on_over_off": .number(round3(queueOn / queueOff)),
                        ]),
                        "api_send_p50_ms": .object([
                            "metrics_on": .array((sendP50[.on] ?? []).map { .number(round3($0)) }),
                            "metrics_off": .array((sendP50[.off] ?? []).map { .number(round3($0)) }),
                            "median_on": .number(apiOn), "median_off": .number(apiOff),
                            "on_over_off": .number(round3(apiOn / apiOff)),
                        ]),
                    ])))
        }
    }

    /// Runs this binary with `arguments` and returns the JSON it printed.
    private func runChild(_ arguments: [String]) throws -> [String: JSONValue] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let object = try JSONValue.parse(String(decoding: data, as: UTF8.self)).objectValue else {
            throw FieldError(
                field: nil, message: "drover \(arguments.joined(separator: " ")) failed (exit \(process.terminationStatus))",
                fix: "run it alone to see why")
        }
        return object
    }
}
