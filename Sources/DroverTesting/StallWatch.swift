import DroverCore
import Foundation
import Synchronization

/// Tells a test that failed because the whole process (or the machine) stopped running from one
/// that failed on its own. A plain OS thread, outside Swift's cooperative pool, ticks every 100 ms
/// and remembers every gap between ticks of over a second. A command that "got no reply in
/// 120 s" while this thread also missed 120 s of ticks was not Drover's to answer.
public enum StallWatch {
    private static let gaps = Mutex<[(end: Date, length: Duration)]>([])

    private static let running: Void = {
        let ticking = DispatchSemaphore(value: 0)
        let thread = Thread {
            ticking.signal()
            tick(every: .milliseconds(100), over: .seconds(1)) { gap in
                gaps.withLock { list in
                    list.append((Date(), gap))
                    if list.count > 20 { list.removeFirst() }
                }
            }
        }
        thread.name = "stall-watch"
        thread.start()
        ticking.wait()
    }()

    /// Sleeps `interval` at a time, `count` times (forever when nil), and reports every gap
    /// between two wakings that is longer than `threshold`.
    static func tick(
        every interval: Duration, over threshold: Duration, count: Int? = nil,
        sleep: (Duration) -> Void = { Thread.sleep(forTimeInterval: $0.seconds) },
        gap: (Duration) -> Void
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
        for resource in ["cpu", "memory", "io"] {
            guard let text = try? String(contentsOfFile: "/proc/pressure/\(resource)", encoding: .utf8) else { continue }
            lines.append("/proc/pressure/\(resource): " + text.split(separator: "\n").joined(separator: " | "))
        }
        return lines.joined(separator: "\n")
    }
}
