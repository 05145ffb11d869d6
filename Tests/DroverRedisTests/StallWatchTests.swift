import DroverCore
import Foundation
import Testing

@testable import DroverTesting

/// The suite's failure reports say whether the process had stopped running (a stall no test can
/// ride out) or Drover was slow on its own; this checks that the watch sees a stall.
@Suite("Stall watch")
struct StallWatchTests {
    @Test("a tick that wakes late is reported as a gap; ticks on time are not")
    func lateTick() async throws {
        let gaps = Locked<[Duration]>([])
        // On its own thread, as the watch runs: the third sleep stands for a stopped process.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let sleeps = Locked(0)
            Thread {
                StallWatch.tick(
                    every: .milliseconds(10), over: .milliseconds(500), count: 6,
                    sleep: { interval in
                        let n = sleeps.withLock { count -> Int in
                            count += 1
                            return count
                        }
                        Thread.sleep(forTimeInterval: n == 3 ? 0.8 : 0.01)
                    },
                    gap: { gap in gaps.withLock { $0.append(gap) } })
                done.resume()
            }.start()
        }
        // A loaded machine may wake another tick late too; a tick on time is never reported.
        #expect(gaps.value.contains { $0 >= .milliseconds(800) }, "\(gaps.value)")
        #expect(gaps.value.allSatisfy { $0 > .milliseconds(500) } && gaps.value.count < 6, "\(gaps.value)")
    }

    @Test("a watched process that is stopped is reported with its state, and again when it runs")
    func stoppedProcess() async throws {
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["60"])
        defer { Task { await child.kill() } }
        kill(child.pid, SIGSTOP)
        StallWatch.watch(pid: child.pid, name: "stopped-sleep")
        #expect(try await eventually { StallWatch.report().contains("stopped-sleep (pid \(child.pid)) is T") }, "\(StallWatch.report())")
        kill(child.pid, SIGCONT)
        #expect(try await eventually { StallWatch.report().contains("stopped-sleep (pid \(child.pid)) runs again") }, "\(StallWatch.report())")
        #expect(StallWatch.threadStates().split(separator: "\n").count > 1 && StallWatch.threadStates().contains("wchan="))
    }
}
