import DroverMetrics
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// One line per request, once it has been answered: its id, method, route, status, duration and
/// workspace. The id goes back as the `request-id` header (where the SDK reads `_request_id`
/// from) and in every error body, so that a user's report and the server's log meet on it.
///
/// The route is the pattern the router matched (`/v1/sessions/:session_id`), never the path: ids
/// in paths would make every line, and every metric series, unique.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let logger: Logger

    static func requestID(_ context: some RequestContext) -> String { "req_\(context.id)" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let id = Self.requestID(context)
        var response = try await next(request, context)
        response.headers[Self.requestIDHeader] = id
        let route = context.endpointPath ?? "unmatched"
        let (status, caller) = (response.status.code, context.caller)
        // Streams are logged when they end: their duration is the stream's.
        response.body = response.body.afterWrite {
            let took = ContinuousClock.now - started
            logger.info(
                "request",
                metadata: [
                    "request_id": .string(id), "method": .string(request.method.rawValue), "route": .string(route),
                    "status": .stringConvertible(status), "duration_ms": .stringConvertible((took.seconds * 10_000).rounded() / 10),
                    "workspace": .string(caller.workspace),
                ])
        }
        return response
    }

    static let requestIDHeader = HTTPField.Name("request-id")!
}

extension ResponseBody {
    /// This body, then `done` once it is written or its writing failed (a client that left).
    func afterWrite(_ done: @escaping @Sendable () -> Void) -> ResponseBody {
        let body = self
        return ResponseBody(contentLength: contentLength) { writer in
            defer { done() }
            try await body.write(writer)
        }
    }
}
