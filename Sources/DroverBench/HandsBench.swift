import ArgumentParser
import DroverBrain
import DroverCore
import DroverHands
import DroverRuntime
import DroverTools
import Foundation

struct HandsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hands",
        abstract: "Sandbox provisioning, warm checkout, and tool-call overhead against running bash directly.",
        discussion: """
            In one run, --calls times each: `bash -c true` run directly; cold provision (a new
            bubblewrap sandbox started until its shell answers); warm checkout (a session takes a
            warm sandbox from the pool: the rename of its workspace, not its start); and the
            toolset's execute("bash", "true") in the session's persistent shell. Overhead is
            execute minus the direct median. The pool's stats close the report.

            --noisy measures isolation instead: a quiet sandbox's calls (a short command in its
            shell), first alone, then while a neighbour sandbox runs a fork bomb and a memory bomb
            that is killed and restarted at its memory limit, the calls --pause-ms apart. The ratio
            of the two p99s is the cost one hostile session puts on another, under the default (or
            DROVER_SANDBOX_*) limits.
            """
    )

    @Option(help: "Calls per measurement.") var calls = 200
    @Flag(help: "Time a quiet sandbox's calls alone and beside a fork bomb and a memory bomb.") var noisy = false
    @Option(help: "With --noisy: milliseconds between the quiet sandbox's calls, so that they span the bombs' cycles.") var pauseMs = 10

    func validate() throws {
        guard calls >= 1 else { throw ValidationError("--calls must be at least 1") }
        guard pauseMs >= 0 else { throw ValidationError("--pause-ms must be 0 or more") }
    }

    func run() async throws {
        guard Sandbox.bubblewrap != nil else { throw ValidationError("bubblewrap is not installed: apt-get install -y bubblewrap") }
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-hands-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        if noisy { return try await runNoisy(root: root) }
        let clock = ContinuousClock()
        func time(_ body: () async throws -> Void) async rethrows -> [Double] {
            var samples: [Double] = []
            for _ in 0..<calls {
                let start = clock.now
                try await body()
                samples.append((clock.now - start).seconds * 1000)
            }
            return samples.sorted()
        }
        let direct = try await time {
            let child = try ChildProcess(executable: "/bin/bash", arguments: ["-c", "true"], environment: [:])
            while child.isRunning { try await Task.sleep(for: .milliseconds(1)) }
        }
        // Cold: what a session without a warm sandbox waits for, its volume (image, file system,
        // mount) included; tearing it down is not timed.
        var cold: [Double] = []
        let limits = SandboxLimits()
        for index in 0..<calls {
            let volume = LoopVolume(directory: root.appendingPathComponent("cold/\(index)"), sizeBytes: limits.diskBytes)
            let start = clock.now
            try await volume.open()
            let sandbox = try Sandbox(
                workspace: volume.mountPoint.appendingPathComponent("workspace"), limits: limits,
                shellState: volume.mountPoint.appendingPathComponent("shell"), volume: volume)
            try await sandbox.start()
            cold.append((clock.now - start).seconds * 1000)
            await sandbox.close()
            await volume.remove()
        }
        cold.sort()

        // Warm checkout: each sample waits (untimed) for the pool to have a warm sandbox.
        var settings = SandboxPoolSettings()
        settings.warmPerConfiguration = 2
        let pool = SandboxPool(root: root.appendingPathComponent("pool"), settings: settings)
        await pool.prewarm()
        var warm: [Double] = []
        for _ in 0..<calls {
            while await pool.stats.warm == 0 { try await Task.sleep(for: .milliseconds(1)) }
            let session = SessionID.make()
            let start = clock.now
            let sandbox = try await pool.checkout(session)
            warm.append((clock.now - start).seconds * 1000)
            guard await sandbox.pid != nil else { throw ValidationError("a warm sandbox was not running") }
            await pool.release(session)
        }
        warm.sort()
        let poolStats = await pool.stats
        await pool.shutdown()

        let toolset = AgentToolset(root: root.appendingPathComponent("hands"))
        let session = SessionID.make()
        let context = ToolContext(session: session, fence: SessionFence(session: session, epoch: 1), deadline: .now + .seconds(3600))
        _ = try await toolset.execute(name: "bash", input: .object(["command": .string("true")]), context: context)
        let execute = try await time { _ = try await toolset.execute(name: "bash", input: .object(["command": .string("true")]), context: context) }
        await toolset.pool.shutdown()
        let overhead = execute.map { $0 - percentile(direct, 50) }.sorted()
        let histogram = poolStats.provisionTime
        print(
            try encodeJSON(
                JSONValue.object([
                    "benchmark": .string("hands"), "calls": .number(Double(calls)),
                    "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                    "direct_bash_true_ms": latencySummary(direct),
                    "cold_provision_ms": latencySummary(cold),
                    "volumes": .string(LoopVolumeSupport.unavailableReason.map { "plain directories: \($0)" } ?? "loop-mounted ext4 images"),
                    "warm_checkout_ms": latencySummary(warm),
                    "execute_bash_true_ms": latencySummary(execute),
                    "execute_overhead_ms": latencySummary(overhead),
                    "pool": .object([
                        "warm": .number(Double(poolStats.warm)), "in_use": .number(Double(poolStats.inUse)),
                        "evicted": .number(Double(poolStats.evicted)), "provisions": .number(Double(histogram.count)),
                        "provision_p50_ms": .number(round3(histogram.percentile(50) ?? .nan)),
                        "provision_p95_ms": .number(round3(histogram.percentile(95) ?? .nan)),
                        "provision_histogram_ms": .object(
                            Dictionary(
                                uniqueKeysWithValues: zip(
                                    LatencyHistogram.bounds.map { "le_\(Int($0))" } + ["more"], histogram.counts.map { JSONValue.number(Double($0)) })
                            )),
                    ]),
                ])))
    }

    /// The quiet sandbox's calls alone, then beside a bombing neighbour, side by side in one run.
    private func runNoisy(root: URL) async throws {
        var limits = try SandboxLimits.fromEnvironment()
        // The bombs run until the quiet calls are done; the neighbour's wall clock only backstops.
        limits.wallClock = .seconds(600)
        let quiet = try Sandbox(workspace: root.appendingPathComponent("quiet"), limits: limits)
        let neighbour = try Sandbox(workspace: root.appendingPathComponent("neighbour"), limits: limits)
        try await quiet.start()
        try await neighbour.start()
        let clock = ContinuousClock()
        func quietCalls() async throws -> [Double] {
            var samples: [Double] = []
            for index in 0..<calls {
                let start = clock.now
                let result = try await quiet.runInShell("echo $(( \(index) * 2 ))")
                samples.append((clock.now - start).seconds * 1000)
                guard result.exitCode == 0, result.output.hasPrefix("\(index * 2)") else {
                    throw ValidationError("the quiet sandbox answered wrongly beside the bombs: \(result.output)")
                }
                try await Task.sleep(for: .milliseconds(pauseMs))
            }
            return samples.sorted()
        }
        _ = try await quiet.runInShell("true")
        let alone = try await quietCalls()
        let bombing = """
            ( while :; do python3 -c 'x = b"x" * (\(limits.memoryBytes) + (512 << 20))' 2>/dev/null; done ) &
            sleep 1; bomb() { bomb | bomb & }; bomb 2>/dev/null; sleep 600
            """
        let countersBefore = neighbour.cgroup?.counters
        let bombs = Task { try await neighbour.run(bombing) }
        // The bombs take a moment to fill the neighbour's process limit: wait until they have.
        let filled = clock.now + .seconds(30)
        while clock.now < filled, (neighbour.cgroup?.processCount() ?? limits.processes) < limits.processes / 2 {
            try await Task.sleep(for: .milliseconds(50))
        }
        let processesAtStart = neighbour.cgroup?.processCount() ?? 0
        let beside = try await quietCalls()
        let countersAfter = neighbour.cgroup?.counters
        // Closing the neighbour kills the bombs, which ends their call.
        await neighbour.close()
        await quiet.close()
        _ = try? await bombs.value
        print(
            try encodeJSON(
                JSONValue.object([
                    "benchmark": .string("hands-noisy"), "calls": .number(Double(calls)), "pause_ms": .number(Double(pauseMs)),
                    "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
                    "cgroups": .bool(neighbour.cgroup != nil),
                    "limits": .object([
                        "memory": .string(ByteCount.describe(limits.memoryBytes)), "pids": .number(Double(limits.processes)),
                        "cpus": .number(limits.cpus),
                    ]),
                    // Evidence that the bombs were going off while the quiet calls ran.
                    "neighbour": .object([
                        "processes_when_timing_began": .number(Double(processesAtStart)),
                        "memory_kills": .number(Double((countersAfter?.memoryKills ?? 0) - (countersBefore?.memoryKills ?? 0))),
                        "refused_forks": .number(Double((countersAfter?.refusedForks ?? 0) - (countersBefore?.refusedForks ?? 0))),
                    ]),
                    "quiet_alone_ms": latencySummary(alone),
                    "quiet_beside_bombs_ms": latencySummary(beside),
                    "p50_ratio": .number(round3(percentile(beside, 50) / percentile(alone, 50))),
                    "p99_ratio": .number(round3(percentile(beside, 99) / percentile(alone, 99))),
                ])))
    }
}
