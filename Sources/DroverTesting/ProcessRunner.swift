import DroverCore
import Foundation

/// Runs a program to completion without blocking a thread of Swift's cooperative pool (which,
/// on a 2-core machine, has two): output goes to a file, and the exit is polled.
public func runProgram(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String]? = nil,
    timeout: Duration = .seconds(120)
) async throws -> (status: Int32, output: String) {
    let result = try await runProgramSeparately(executable, arguments, environment: environment, timeout: timeout, mergeErrors: true)
    return (result.status, result.stdout)
}

/// As `runProgram`, with standard output and standard error kept apart.
public func runProgramSeparately(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String]? = nil,
    timeout: Duration = .seconds(120),
    mergeErrors: Bool = false
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let base = scratchDirectory("run").path
    let log = base + ".out"
    let errors = base + ".err"
    defer {
        try? FileManager.default.removeItem(atPath: log)
        try? FileManager.default.removeItem(atPath: errors)
    }
    let child = try ChildProcess(
        executable: executable, arguments: arguments, environment: environment, outputPath: log, errorPath: mergeErrors ? nil : errors)
    let deadline = ContinuousClock.now + timeout
    while child.isRunning {
        if ContinuousClock.now > deadline {
            await child.kill()
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    let errorOutput = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
    return (child.exitCode ?? -1, output, errorOutput)
}
