import Foundation

/// The one thread every child is spawned from, for the life of the process.
///
/// Linux ties a child's parent-death signal (`PR_SET_PDEATHSIG`, which bubblewrap's
/// `--die-with-parent` sets) to the *thread* that created it, not to the process. Spawned from a
/// Swift or Dispatch pool thread, a sandbox was sent SIGKILL whenever that thread retired, which
/// a loaded machine makes common: the shell died mid-call (137), and the call reported it as the
/// command's death. This thread never ends, so a child's parent dies only with Drover itself.
final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        startNamedThread("drover-spawn", stackSize: 1 << 20) { [self] in serve() }
    }

    /// Runs `body` on the spawn thread and waits for it: a spawn takes about a millisecond, so
    /// the caller blocks no longer than it did spawning by itself.
    func perform<T>(_ body: @escaping () -> T) -> T {
        var result: T?
        let done = DispatchSemaphore(value: 0)
        condition.lock()
        jobs.append {
            result = body()
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        return result!
    }

    private func serve() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
