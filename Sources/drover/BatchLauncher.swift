import DroverCore
import DroverJobs
import DroverSchedule
import Foundation

/// Starts the batch of a job deployment's fire as a `drover run` of its own, so the batch has
/// what a run from the terminal has (its workers, sandboxes, the job's playbook offline) and
/// outlives a scheduler that stops: the run's lock and content keys make a second start of the
/// same batch harmless. Its output goes to `<data dir>/batches/BATCH.log`, its report to the
/// job's report folder under the batch id.
final class BatchLauncher: Sendable {
    let dataDirectory: URL
    private let children = Locked<[ChildProcess]>([])
    private let reaping = Locked(false)

    init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
    }

    func launch(_ launch: DeploymentFirer.BatchLaunch) throws {
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
