import DroverCore
import Foundation

/// Where the scheduler reads the time, so tests can run it on a simulated clock.
public protocol SchedulerClock: Sendable {
    func now() -> Date
}

/// The wall clock.
public struct SystemSchedulerClock: SchedulerClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that a test moves by hand.
public final class ManualSchedulerClock: SchedulerClock {
    private let current: Locked<Date>

    public init(_ start: Date) { current = Locked(start) }

    public func now() -> Date { current.withLock { $0 } }

    public func set(_ date: Date) { current.withLock { $0 = date } }

    public func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

/// Simulated time that runs `rate` times faster than real time from `start`: a scheduler
/// process started with `--clock-rate 120` lives through a minute every half second.
public struct ScaledSchedulerClock: SchedulerClock {
    public let start: Date
    public let rate: Double
    private let origin: ContinuousClock.Instant

    public init(start: Date, rate: Double) {
        self.start = start
        self.rate = rate
        self.origin = ContinuousClock.now
    }

    public func now() -> Date {
        let elapsed = ContinuousClock.now - origin
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return start + seconds * rate
    }
}
