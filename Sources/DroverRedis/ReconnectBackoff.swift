/// The waits between tries within a client's reconnect window: doubling from the initial
/// backoff up to the maximum, each jittered to between half and all of it, so that callers that
/// lost Redis together do not all come back at the same instant.
struct ReconnectBackoff {
    private let deadline: ContinuousClock.Instant
    private var delay: Duration
    private let maximum: Duration

    init(_ options: RedisClientOptions) {
        deadline = .now + options.reconnectWindow
        delay = options.initialBackoff
        maximum = options.maximumBackoff
    }

    /// The wait before the next try; nil once that try would fall past the window.
    mutating func next() -> Duration? {
        guard ContinuousClock.now + delay < deadline else { return nil }
        defer { delay = min(delay * 2, maximum) }
        return delay * Double.random(in: 0.5...1.0)
    }
}
