import ArgumentParser
import DroverBrain
import DroverCore
import DroverJobs
import DroverQueue
import DroverRuntime
import Foundation

struct BatchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Measure batch orchestration: items/s, overhead per item, peak memory.",
        discussion: """
            Runs a job of --items items through the whole path `drover run` takes: a session per
            item, the task queue, in-process workers, the recorder, and the scripted model in a
            process of its own (`drover model-stub`, every answer delayed by --model-delay-ms, a
            model's think time). Tools are not called, so it measures orchestration, not sandboxes
            (`drover bench hands` measures those). cpu_ms_per_item is this process's CPU;
            model_cpu_ms_per_item is the scripted model's, which a real model spends elsewhere.

            overhead_ms per item = the item's time from start to result minus the model delay: the
            cost of creating the session, seeding it, queueing, claiming, rebuilding the context,
            appending events and noticing the end. With DROVER_REDIS_URL unset it uses a fresh
            embedded redis-server and SQLite file in a temporary directory.
            """
    )

    @Option(help: "Items in the batch.") var items = 1000
    @Option(
        help: "Items in flight at once (the job's concurrency). A comma-separated list, such as 16,64,256, runs each in turn and prints the curve.")
    var concurrency = ConcurrencyList(values: [64])
    @Option(help: "Scripted model delay before each answer, in milliseconds.") var modelDelayMs = 200

    func validate() throws {
        guard (1...1_000_000).contains(items) else { throw ValidationError("--items: use 1 to 1000000") }
        guard concurrency.values.allSatisfy({ (1...512).contains($0) }) else {
            throw ValidationError("--concurrency: use 1 to 512 (or a comma-separated list of such, like 16,64,256)")
        }
        guard (0...60_000).contains(modelDelayMs) else { throw ValidationError("--model-delay-ms: use 0 to 60000") }
    }

    func run() async throws {
        guard concurrency.values.count > 1 else {
            print(try encodeJSON(try await measure(concurrency: concurrency.values[0])))
            return
        }
        var points: [JSONValue] = []
        for value in concurrency.values { points.append(try await measure(concurrency: value)) }
        print(try encodeJSON(JSONValue.object(["benchmark": .string("batch"), "sweep": .array(points)])))
    }

    /// One run at `concurrency`, in a data directory (and embedded Redis) of its own.
    private func measure(concurrency: Int) async throws -> JSONValue {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-batch-\(getpid())-\(concurrency)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        setenv("DROVER_DATA_DIR", directory.path, 1)
        unsetenv("DROVER_DB")
        let jobFile = directory.appendingPathComponent("bench.yaml")
        try Data(
            """
            name: bench
            agent: {model: claude-sonnet-4-5}
            items: {list: [\((1...items).map { "i\($0)" }.joined(separator: ", "))]}
            prompt: "Item {{value}}"
            concurrency: \(concurrency)
            timeout_seconds: 600
            output: {columns: [ok]}
            playbook:
              ttft_ms: \(modelDelayMs)
              final: '{"ok": true}'
            """.utf8
        ).write(to: jobFile)
        let spec = try JobFileParser.load(path: jobFile.path)
        // The scripted model runs as a process of its own, as a real model is elsewhere: the CPU
        // per item is then Drover's alone, and the model's is reported beside it.
        let modelScript = directory.appendingPathComponent("model.yaml")
        try Data("playbook:\n  ttft_ms: \(modelDelayMs)\n  final: '{\"ok\": true}'\n".utf8).write(to: modelScript)
        let stub = try await ScriptedModelProcess.start(script: modelScript, directory: directory)
        do {
            let result = try await measure(concurrency: concurrency, spec: spec, stub: stub)
            await stub.process.terminate(grace: .seconds(5))
            return result
        } catch {
            await stub.process.terminate(grace: .seconds(5))
            throw error
        }
    }

    private func measure(concurrency: Int, spec: JobSpec, stub: ScriptedModelProcess) async throws -> JSONValue {
        var environment = ProcessInfo.processInfo.environment
        environment["ANTHROPIC_API_KEY"] = "scripted"
        environment["ANTHROPIC_BASE_URL"] = stub.baseURL
        let model = try await JobModel.resolve(for: spec, environment: environment)

        // This run's own peak: the kernel's high-water mark, reset now.
        let peakIsThisRun = ResidentMemory.resetPeak()
        return try await withRuntime(announce: false) { runtime in
            let agentJSON = JSONValue.object(["model": .string("claude-sonnet-4-5")]).compactJSON
            let jobItems = try JobItems.expand(spec, agentJSON: agentJSON)
            let plan = BatchPlan(
                spec: spec, items: jobItems, agent: AgentSnapshot(model: "claude-sonnet-4-5"), batchId: "batch_bench", modelLabel: model.label)
            let handsRoot = try runtime.handsRoot()
            let queueName = try QueueName("jobs.bench")
            let engine = BatchEngine(
                runtime: runtime, concurrency: concurrency, model: model, hand: InProcessHand(),
                handsRoot: handsRoot, queueName: queueName)
            var options = BatchRunner.Options(files: try runtime.sessionFiles())
            options.queue = queueName
            options.scriptedItems = model.items
            let runnerOptions = options
            let meter = RedisWorkMeter(redis: runtime.redis)
            let redisBefore = try await meter.read()
            let cpuBefore = Self.processCPUSeconds()
            let modelCPUBefore = stub.cpuSeconds
            let started = ContinuousClock.now
            let outcomes = try await engine.run { log, queue, database in
                try await BatchRunner(log: log, queue: queue, database: database, options: runnerOptions) { _ in }.run(plan)
            }
            let seconds = (ContinuousClock.now - started).seconds
            let cpuSeconds = Self.processCPUSeconds() - cpuBefore
            let modelCPUSeconds = stub.cpuSeconds - modelCPUBefore
            let redisWork = RedisWorkMeter.work(from: redisBefore, to: try await meter.read(), tasks: items)
            let succeeded = outcomes.filter { $0.status == .succeeded }.count
            // One model request per item, so each item's floor is one model delay.
            let overheads = outcomes.compactMap(\.durationSeconds).map { $0 * 1000 - Double(modelDelayMs) }.sorted()
            func percentile(_ p: Double) -> Double {
                guard !overheads.isEmpty else { return 0 }
                return (overheads[min(overheads.count - 1, Int(Double(overheads.count - 1) * p))] * 10).rounded() / 10
            }
            let ideal = Double(concurrency) * 1000 / Double(max(modelDelayMs, 1))
            return .object([
                "items": .number(Double(items)),
                "succeeded": .number(Double(succeeded)),
                "concurrency": .number(Double(concurrency)),
                "model_delay_ms": .number(Double(modelDelayMs)),
                "seconds": .number((seconds * 1000).rounded() / 1000),
                "items_per_second": .number((Double(items) / seconds * 10).rounded() / 10),
                "ideal_items_per_second": .number((min(ideal, 1e9) * 10).rounded() / 10),
                "overhead_ms_per_item": .object(["p50": .number(percentile(0.5)), "p95": .number(percentile(0.95)), "p99": .number(percentile(0.99))]
                ),
                "peak_rss_mb": .number((ResidentMemory.peakMB * 10).rounded() / 10),
                "peak_rss_is_this_run": .bool(peakIsThisRun),
                // This process (workers, recorder, runner) over the run, user and system time.
                "cpu_ms_per_item": .number(round3(cpuSeconds * 1000 / Double(items))),
                "model_cpu_ms_per_item": .number(round3(modelCPUSeconds * 1000 / Double(items))),
                "redis_commands_per_item": .number(redisWork.commandsPerTask),
                "redis_cpu_us_per_item": .number(redisWork.cpuUsPerTask),
                "model": .string("scripted (drover model-stub, a process of its own)"),
            ])
        }
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// `--concurrency 16,64,256`.
struct ConcurrencyList: ExpressibleByArgument {
    let values: [Int]

    init(values: [Int]) {
        self.values = values
    }

    init?(argument: String) {
        let values = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        self.values = values.compactMap { $0 }
    }

    var defaultValueDescription: String { values.map(String.init).joined(separator: ",") }
}

/// `drover model-stub` as a child process: the scripted model, on loopback, out of the measured
/// process.
struct ScriptedModelProcess {
    let process: ChildProcess
    let baseURL: String

    static func start(script: URL, directory: URL) async throws -> ScriptedModelProcess {
        let output = directory.appendingPathComponent("model-stub.out")
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let process = try ChildProcess(
            executable: executable, arguments: ["model-stub", "--script", script.path, "--port", "0"], outputPath: output.path)
        // It prints its address once it listens.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("http://") }), let url = line.split(separator: " ").first {
                return ScriptedModelProcess(process: process, baseURL: String(url))
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        await process.terminate(grace: .seconds(1))
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        throw ValidationError("drover model-stub did not start: \(text)")
    }

    /// User and system time the model has used, from /proc.
    var cpuSeconds: Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // After the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
