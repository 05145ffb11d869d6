import DroverRedis
import Logging

/// What a command does when the Redis it is configured for cannot be reached as it starts.
///
/// A one-shot command (`drover run`, `drover queue`) fails at once with the connection error, so
/// that a wrong port or a stopped server is reported to the person typing. A long-running role
/// (worker, recorder, scheduler, API) waits instead, as it rides out an outage later: started
/// by a supervisor beside a Redis that is restarting or replaying its AOF, it used to exit with
/// "cannot connect" and, unsupervised, stay down after Redis came back.
public enum RedisStartup: Sendable {
    case failFast
    /// Retries while Redis is unreachable or loading, with `RedisOutage`'s backoff and its one
    /// line at the start and end of the wait, until it answers or the process is stopped. A
    /// refused password or a bad URL still fails at once: waiting cannot cure those.
    case waitForRedis(role: String)

    func connect(_ url: RedisURL, options: RedisClientOptions) async throws -> RedisClient {
        switch self {
        case .failFast:
            return try await RedisClient.connect(url, options: options)
        case .waitForRedis(let role):
            return try await Self.waitAndConnect(url, options: options, role: role)
        }
    }

    private static func waitAndConnect(_ url: RedisURL, options: RedisClientOptions, role: String) async throws -> RedisClient {
        let logger = Logger(label: "drover.startup")
        var outage = RedisOutage(role)
        while true {
            // Caught into a Result first: a `catch where` straight on the typed-throws call
            // crashes Swift 6.3's SIL ownership checker.
            let attempt: Result<RedisClient, RedisError>
            do throws(RedisError) {
                attempt = .success(try await RedisClient.connect(url, options: options))
            } catch {
                attempt = .failure(error)
            }
            switch attempt {
            case .success(let client):
                outage.recovered(logger: logger)
                return client
            case .failure(let error) where RedisOutage.isOutage(error):
                try await outage.wait(after: error, logger: logger)
            case .failure(let error):
                throw error
            }
        }
    }
}
