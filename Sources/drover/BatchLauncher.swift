import DroverCore
import DroverJobs
import DroverRedis
import DroverSchedule
import Foundation

/// Starts the batch of a job deployment's fire as a `drover run` of its own, so the batch has
/// what a run from the terminal has (its workers, sandboxes, the job's playbook offline) and
/// outlives a scheduler that stops: the run's lock and content keys make a second start of the
/// same batch harmless. Its output goes to `<data dir>/batches/BATCH.log`, its report to the
/// job's report folder under the batch id.
final class BatchLauncher: Sendable {
    let dataDirectory: URL
    let redis: RedisClient
    private let children = Locked<[ChildProcess]>([])
    private let reaping = Locked(false)

    init(dataDirectory: URL, redis: RedisClient) {
        self.dataDirectory = dataDirectory
        self.redis = redis
    }

    struct StartFailed: Error, CustomStringConvertible {
        let description: String
    }

    /// Returns once the run holds the batch's lock: started for good, and connected to the
    /// embedded Redis, so a short-lived caller (`drover deployments run`) that owns that server
    /// does not stop it under the run. A run that exits without running (a bad job file, say)
    /// is an error with its last words.
    func launch(_ launch: DeploymentFirer.BatchLaunch) async throws {
        let spec = try JobFileParser.load(path: launch.job.file)
        let report = spec.reportDirectory.appendingPathComponent(launch.batchId)
        let logs = dataDirectory.appendingPathComponent("batches")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["DROVER_DATA_DIR"] = dataDirectory.path
        let child = try ChildProcess(
            executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
            arguments: ["run", launch.job.file, "--batch-id", launch.batchId, "--report-dir", report.path],
            environment: environment, outputPath: logs.appendingPathComponent("\(launch.batchId).log").path)
        children.withLock { $0.append(child) }
        startReaping()
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try await BatchLock.isHeld(redis: redis, batchId: launch.batchId) { return }
            if !child.isRunning {
                // It ran already (0, 1), or a run of the batch holds it elsewhere (3).
                if [0, 1, 3].contains(child.exitCode ?? -1) { return }
                let log = (try? String(contentsOf: logs.appendingPathComponent("\(launch.batchId).log"), encoding: .utf8)) ?? ""
                throw StartFailed(
                    description: "drover run for \(launch.batchId) exited (\(child.exitCode ?? -1)) before it started: \(log.suffix(400))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Collects the exit of every finished run, so none lingers as a zombie.
    private func startReaping() {
        guard
            reaping.withLock({ running in
                defer { running = true }
                return !running
            })
        else { return }
        Task {
            while true {
                try? await Task.sleep(for: .seconds(1))
                let left = children.withLock { list -> Int in
                    list.removeAll { !$0.isRunning }
                    return list.count
                }
                if left == 0,
                    reaping.withLock({ running in
                        // Stop only if no launch came in meanwhile.
                        let idle = children.value.isEmpty
                        if idle { running = false }
                        return idle
                    })
                {
                    return
                }
            }
        }
    }
}
