import DroverCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let setpriv = "/usr/bin/setpriv"

/// What a thread of the test's own spawned, handed back once the thread has ended.
private final class Spawned: @unchecked Sendable {
    var pid: pid_t = -1
    var failure: String?
}

@Suite("Spawn")
struct SpawnTests {
    /// bubblewrap's --die-with-parent asks the kernel for SIGKILL when its parent dies, and the
    /// kernel counts the *thread* that spawned it as the parent. Spawned from a pool thread, a
    /// sandbox was killed (137) mid-call whenever that thread retired.
    @Test(
        "a child that asks to die with its parent outlives the thread that spawned it",
        .enabled(if: FileManager.default.isExecutableFile(atPath: setpriv), "needs setpriv (util-linux)"))
    func parentDeathIsTheProcess() async throws {
        let spawned = Spawned()
        var thread = pthread_t()
        let context = Unmanaged.passRetained(spawned).toOpaque()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let spawned = Unmanaged<Spawned>.fromOpaque(raw!).takeRetainedValue()
                do {
                    // As --die-with-parent does: SIGKILL to the child when its parent dies.
                    let pid = try Spawn(executable: setpriv, arguments: ["--pdeathsig", "KILL", "/bin/sleep", "600"], environment: [:]).start()
                    spawned.pid = pid
                    // The signal is tied to the thread only if it is asked for while the thread
                    // lives: setpriv asks before it runs sleep, so wait for sleep.
                    let deadline = Date().addingTimeInterval(120)
                    while (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) != "sleep\n", Date() < deadline {
                        usleep(1000)
                    }
                } catch {
                    spawned.failure = "\(error)"
                }
                return nil
            }, context)
        try #require(created == 0)
        // The spawning thread has ended: had it been the child's parent, the kernel has sent the
        // signal by the time the child is looked at below.
        pthread_join(thread, nil)
        try #require(spawned.failure == nil, "\(spawned.failure ?? "")")
        let pid = spawned.pid
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try await Task.sleep(for: .milliseconds(500))
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        #expect(reaped == 0, "the child ended (status \(status)) when the thread that spawned it did")
    }
}
