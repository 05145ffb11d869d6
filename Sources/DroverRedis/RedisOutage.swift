import Logging

/// Rides out a Redis outage in a long-running loop (a worker's claim loop, the recorder, the
/// scheduler): the loop catches what `isOutage` says is one, calls `wait`, and goes round again.
///
/// A restart of Redis (kill -9, then AOF replay with `LOADING`) used to end every worker,
/// recorder and `serve` with "lost the connection to Redis ... while a command was in flight",
/// although no data was lost and the server came back seconds later. Now each loop backs off
/// (capped, with jitter), logs once when the outage starts and once when it ends, and resumes.
public struct RedisOutage: Sendable {
    public let what: String
    public var initialBackoff: Duration
    public var maximumBackoff: Duration
    private var backoff: Duration
    private var since: ContinuousClock.Instant?
    private var attempts = 0

    public init(_ what: String, initialBackoff: Duration = .milliseconds(100), maximumBackoff: Duration = .seconds(5)) {
        self.what = what
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.backoff = initialBackoff
    }

    /// Whether `error` means Redis could not be reached (rather than a refused command or a bug):
    /// a broken or refused connection, or a server still loading its data. Errors of the queue
    /// and the session log carry the Redis error they came from; it is looked for there too, or
    /// a claim script cut off by a restart would end the worker instead of waiting.
    public static func isOutage(_ error: Error) -> Bool {
        let redisError = (error as? RedisError) ?? (error as? CarriesRedisError)?.redisError
        return redisError?.isTransient == true
    }

    public var isDown: Bool { since != nil }

    /// Records a failure and sleeps for the next backoff. Throws only `CancellationError`.
    public mutating func wait(after error: Error, logger: Logger) async throws {
        attempts += 1
        if since == nil {
            since = .now
            logger.warning("Redis is unreachable; \(what) keeps retrying until it is back", metadata: ["error": "\(error)"])
        }
        let jittered = backoff * Double.random(in: 0.5...1.0)
        backoff = min(backoff * 2, maximumBackoff)
        try await Task.sleep(for: jittered)
    }

    /// Records a success: the end of an outage, if one was under way.
    public mutating func recovered(logger: Logger) {
        guard let started = since else { return }
        logger.notice("Redis is back; \(what) resumed", metadata: ["down_for": "\(ContinuousClock.now - started)", "retries": "\(attempts)"])
        since = nil
        attempts = 0
        backoff = initialBackoff
    }
}

/// An error that may have come from Redis, such as `TaskQueueError.redis`.
public protocol CarriesRedisError: Error {
    var redisError: RedisError? { get }
}
