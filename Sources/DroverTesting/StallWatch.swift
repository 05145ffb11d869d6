import DroverCore
import Foundation
import Synchronization

/// Tells a test that failed because the whole process (or the machine) stopped running from one
/// that failed on its own. A plain OS thread, outside Swift's cooperative pool, ticks every 100 ms
/// and remembers every gap between ticks of over a second. A command that "got no reply in
/// 120 s" while this thread also missed 120 s of ticks was not Drover's to answer.
///
/// It also watches what a plain thread alone cannot: a task on the cooperative pool that sleeps
/// 100 ms at a time (when it falls 2 s behind, the states and wait channels of every thread of
/// the process are kept, to say what the pool's threads were blocked in), and the processes
/// tests register (`watch(pid:name:)`, the Redis fixture's server), whose scheduler state is
/// kept whenever it is stopped (T) or in uninterruptible sleep (D) at a tick.
public enum StallWatch {
    private static let gaps = Mutex<[(end: Date, length: Duration)]>([])
    private static let asyncTick = Mutex(ContinuousClock.now)
    private static let episodes = Mutex<[String]>([])
    private static let watched = Mutex<[(pid: Int32, name: String)]>([])

    private static let running: Void = {
        let ticking = DispatchSemaphore(value: 0)
        let thread = Thread {
            ticking.signal()
            var poolStalled = false
            var stuckStates: [Int32: String] = [:]
            tick(every: .milliseconds(100), over: .seconds(1)) { gap in
                gaps.withLock { list in
                    list.append((Date(), gap))
                    if list.count > 20 { list.removeFirst() }
                }
            } each: {
                let lag = ContinuousClock.now - asyncTick.withLock { $0 }
                if lag > .seconds(2), !poolStalled {
                    poolStalled = true
                    record("\(Date()): a 100 ms sleep on the cooperative pool is \(lag) late; threads:\n" + threadStates())
                } else if lag < .seconds(1), poolStalled {
                    poolStalled = false
                    record("\(Date()): the cooperative pool runs again")
                }
                for (pid, name) in watched.withLock({ $0 }) {
                    let state = ProcessStates.describe(pid)
                    let stuck = state.map { $0.hasPrefix("T") || $0.hasPrefix("t") || $0.hasPrefix("D") } ?? false
                    if stuck, stuckStates[pid] != state {
                        record("\(Date()): \(name) (pid \(pid)) is \(state ?? "?")")
                    } else if !stuck, stuckStates[pid] != nil {
                        record("\(Date()): \(name) (pid \(pid)) runs again")
                    }
                    stuckStates[pid] = stuck ? state : nil
                }
            }
        }
        thread.name = "stall-watch"
        thread.start()
        ticking.wait()
        Task.detached {
            while true {
                try? await Task.sleep(for: .milliseconds(100))
                asyncTick.withLock { $0 = ContinuousClock.now }
            }
        }
    }()

    private static func record(_ episode: String) {
        episodes.withLock { list in
            list.append(String(episode.prefix(6000)))
            if list.count > 12 { list.removeFirst() }
        }
    }

    /// Keeps an eye on `pid` (a server the tests started) until it exits.
    public static func watch(pid: Int32, name: String) {
        start()
        watched.withLock { list in
            list.removeAll { kill($0.pid, 0) != 0 }
            list.append((pid, name))
        }
    }

    /// One line per thread of this process: its state, name and wait channel.
    static func threadStates() -> String {
        let pid = getpid()
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { Int32($0) }.sorted().compactMap { tid in ProcessStates.describe(pid, task: tid).map { "  \(tid) \($0)" } }
            .joined(separator: "\n")
    }

    /// Sleeps `interval` at a time, `count` times (forever when nil), and reports every gap
    /// between two wakings that is longer than `threshold`.
    static func tick(
        every interval: Duration, over threshold: Duration, count: Int? = nil,
        sleep: (Duration) -> Void = { Thread.sleep(forTimeInterval: $0.seconds) },
        gap: (Duration) -> Void, each: () -> Void = {}
    ) {
        let clock = ContinuousClock()
        var last = clock.now
        var ticks = 0
        while count.map({ ticks < $0 }) ?? true {
            sleep(interval)
            ticks += 1
            let now = clock.now
            if now - last > threshold { gap(now - last) }
            last = now
            each()
        }
    }

    /// Starts the watch once per process, and returns once it is watching.
    public static func start() { _ = running }

    /// The gaps seen, and the kernel's pressure stall figures (`/proc/pressure`): `full` is the
    /// share of time in which every runnable task of the machine was stalled on that resource.
    public static func report() -> String {
        let seen = gaps.withLock { $0 }
        var lines = [
            seen.isEmpty
                ? "stall watch: no gap over 1 s between 100 ms ticks of a plain thread"
                : "stall watch: gaps over 1 s between 100 ms ticks of a plain thread: "
                    + seen.map { "\($0.length.formatted(.units(allowed: [.seconds], width: .narrow))) ending \($0.end)" }.joined(separator: ", ")
        ]
        let seenEpisodes = episodes.withLock { $0 }
        lines.append(
            seenEpisodes.isEmpty
                ? "stall watch: the cooperative pool kept its 100 ms timer, and no watched process was stopped or in disk sleep"
                : "stall watch episodes:\n" + seenEpisodes.joined(separator: "\n"))
        for resource in ["cpu", "memory", "io"] {
            guard let text = try? String(contentsOfFile: "/proc/pressure/\(resource)", encoding: .utf8) else { continue }
            lines.append("/proc/pressure/\(resource): " + text.split(separator: "\n").joined(separator: " | "))
        }
        return lines.joined(separator: "\n")
    }
}
