import DroverCore

/// Polls `condition`, sleeping between looks rather than blocking a thread, until it holds or
/// `limit` has passed, and says whether it held. Tests wait on conditions with generous
/// deadlines; they never assert how long something took.
public func eventually(
    within limit: Duration = .seconds(60), polling interval: Duration = .milliseconds(5),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}

/// The error `finishing(within:_:)` throws when its operation is still running at the limit.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let limit: Duration
    /// Whether the process or the machine stalled meanwhile (`StallWatch`).
    public let stalls: String
    public var description: String { "did not finish within \(limit)\n\(stalls)" }
}

/// Runs `operation` and fails if it is still running after `limit`, cancelling it then. This is
/// how a test says "stops at once instead of waiting out the tool's hour": the limit sits far
/// from both the expected time and the failure's, so a loaded machine never decides the outcome.
/// The caller does not wait for an operation that ignores cancellation.
public func finishing<T: Sendable>(within limit: Duration = .seconds(60), _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = Locked<CheckedContinuation<T, any Error>?>(nil)
    let settle: @Sendable (Result<T, any Error>) -> Void = { result in
        outcome.withLock { continuation in
            continuation?.resume(with: result)
            continuation = nil
        }
    }
    StallWatch.start()
    return try await withCheckedThrowingContinuation { continuation in
        outcome.withLock { $0 = continuation }
        let work = Task {
            do { settle(.success(try await operation())) } catch { settle(.failure(error)) }
        }
        // Once the operation has settled, this late failure finds no continuation and does nothing.
        Task {
            try? await Task.sleep(for: limit)
            settle(.failure(DeadlineExceeded(limit: limit, stalls: StallWatch.report())))
            work.cancel()
        }
    }
}
