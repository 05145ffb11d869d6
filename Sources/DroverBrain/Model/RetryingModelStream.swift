/// The retry loop both model clients share: run `attempt`; on a retryable `ModelError` report
/// `.retrying`, wait (honouring retry-after) and try again, up to the policy's limit.
enum RetryingModelStream {
    typealias Continuation = AsyncThrowingStream<ModelStreamEvent, Error>.Continuation

    static func make(
        policy: RetryPolicy,
        attempt: @escaping @Sendable (Continuation) async throws -> Void
    ) -> AsyncThrowingStream<ModelStreamEvent, Error> {
        let (stream, continuation) = AsyncThrowingStream<ModelStreamEvent, Error>.makeStream()
        let task = Task {
            var number = 1
            while true {
                do {
                    try await attempt(continuation)
                    continuation.finish()
                    return
                } catch let error as ModelError where error.isRetryable {
                    guard number < policy.maxAttempts else {
                        continuation.finish(throwing: ModelError.retriesExhausted(attempts: number, last: error.description))
                        return
                    }
                    var retryAfter: Duration?
                    if case .api(_, _, _, let after) = error { retryAfter = after }
                    let delay = policy.delay(attempt: number, retryAfter: retryAfter)
                    continuation.yield(.retrying(attempt: number, delay: delay, reason: error.description))
                    do {
                        try await Task.sleep(for: delay)
                    } catch {
                        continuation.finish(throwing: error)
                        return
                    }
                    number += 1
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
