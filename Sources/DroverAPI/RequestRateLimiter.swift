import DroverCore
import Foundation
import HTTPTypes
import Hummingbird

/// A token bucket per workspace: `burst` requests at once, refilled at `requestsPerSecond`.
/// One runaway client (a loop that sends events as fast as it can) then slows only its own
/// workspace, and the SDK, which honours `retry-after` on 429, backs off by itself.
public final class RequestRateLimiter: Sendable {
    public struct Decision: Sendable, Equatable {
        public let allowed: Bool
        /// Whole requests left in the bucket after this one.
        public let remaining: Int
        /// When a refused request may be retried.
        public let retryAfterSeconds: Int
    }

    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    public let requestsPerSecond: Double
    public let burst: Int
    private let buckets = Locked<[String: Bucket]>([:])

    public init(requestsPerSecond: Double, burst: Int) {
        precondition(requestsPerSecond > 0 && burst > 0)
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
    }

    public func take(_ workspace: String, now: ContinuousClock.Instant = .now) -> Decision {
        buckets.withLock { buckets in
            var bucket = buckets[workspace] ?? Bucket(tokens: Double(burst), updated: now)
            let elapsed = max(0, (now - bucket.updated).seconds)
            bucket.tokens = min(Double(burst), bucket.tokens + elapsed * requestsPerSecond)
            bucket.updated = now
            defer { buckets[workspace] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return Decision(allowed: true, remaining: Int(bucket.tokens), retryAfterSeconds: 0)
            }
            let wait = (1 - bucket.tokens) / requestsPerSecond
            return Decision(allowed: false, remaining: 0, retryAfterSeconds: max(1, Int(wait.rounded(.up))))
        }
    }
}

/// Applies the limiter to `/v1` calls once `AuthenticationMiddleware` has named the workspace,
/// and reports the bucket in the `anthropic-ratelimit-requests-*` headers the API uses.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    static let limitHeader = HTTPField.Name("anthropic-ratelimit-requests-limit")!
    static let remainingHeader = HTTPField.Name("anthropic-ratelimit-requests-remaining")!

    let limiter: RequestRateLimiter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !context.workspace.isEmpty else { return try await next(request, context) }
        let decision = limiter.take(context.workspace)
        guard decision.allowed else {
            throw APIError(
                .tooManyRequests, "rate_limit_error",
                "this workspace sent more than \(limiter.burst) requests at once or \(Self.rate(limiter.requestsPerSecond)) a second. Fix: retry after \(decision.retryAfterSeconds) s (the anthropic SDK does), or start the server with a higher --requests-per-second",
                retryAfterSeconds: decision.retryAfterSeconds)
        }
        var response = try await next(request, context)
        response.headers[Self.limitHeader] = String(limiter.burst)
        response.headers[Self.remainingHeader] = String(decision.remaining)
        return response
    }

    static func rate(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
