import ArgumentParser
import DroverBrain
import DroverCore
import DroverHands
import DroverStore
import Foundation

struct HandsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hands",
        abstract: "Sandbox start-up and tool-call overhead against running bash directly.",
        discussion: """
        In one run, side by side, --calls times each: `bash -c true` run directly; `true` in a
        fresh bubblewrap sandbox (cold provision: a sandbox is made per call, there is no warm
        pool yet); and the toolset's execute("bash", "true"), which adds the shell-state
        restore and save. Overhead is execute minus direct.
        """
    )

    @Option(help: "Calls per measurement.") var calls = 200

    func run() async throws {
        guard Sandbox.bubblewrap != nil else { throw ValidationError("bubblewrap is not installed: apt-get install -y bubblewrap") }
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("drover-bench-hands-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
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
        let sandbox = try Sandbox(workspace: root.appendingPathComponent("ws"))
        let cold = try await time { _ = try await sandbox.run("true") }
        let toolset = AgentToolset(root: root.appendingPathComponent("hands"))
        let session = SessionID.make()
        let context = ToolContext(session: session, fence: SessionFence(session: session, epoch: 1), deadline: .now + .seconds(3600))
        let execute = try await time { _ = try await toolset.execute(name: "bash", input: .object(["command": .string("true")]), context: context) }
        let overhead = execute.map { $0 - percentile(direct, 50) }.sorted()
        func summary(_ samples: [Double]) -> JSONValue {
            .object(["p50": .number(round3(percentile(samples, 50))), "p95": .number(round3(percentile(samples, 95))), "p99": .number(round3(percentile(samples, 99)))])
        }
        print(try encodeJSON(JSONValue.object([
            "benchmark": .string("hands"), "calls": .number(Double(calls)),
            "cores": .number(Double(ProcessInfo.processInfo.activeProcessorCount)),
            "direct_bash_true_ms": summary(direct),
            "cold_provision_ms": summary(cold),
            "execute_bash_true_ms": summary(execute),
            "execute_overhead_ms": summary(overhead),
            "warm_checkout_ms": .string("not measured: there is no warm pool yet; every call provisions a sandbox"),
        ])))
    }
}
