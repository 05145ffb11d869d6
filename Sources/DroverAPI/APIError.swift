import DroverCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error in the Managed Agents API's shape: `{"type": "error", "error": {"type", "message"},
/// "request_id"}`, with the SDK's typed `error_code`/`details` where the SDK defines one.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let type: String
    public let message: String
    /// The SDK's typed error code (`environment_archived`, ...), when there is one.
    public let errorCode: String?
    /// Sent as `retry-after` (the SDK honours it on 429).
    public let retryAfterSeconds: Int?
    /// The typed error's other `details` fields (a refused heartbeat's `current_state`).
    public let details: [String: JSONValue]

    public init(
        _ status: HTTPResponse.Status, _ type: String, _ message: String, errorCode: String? = nil, retryAfterSeconds: Int? = nil,
        details: [String: JSONValue] = [:]
    ) {
        self.status = status
        self.type = type
        self.message = message
        self.errorCode = errorCode
        self.retryAfterSeconds = retryAfterSeconds
        self.details = details
    }

    /// 400 naming the field and the fix; `errorCode` selects the SDK's typed error class.
    public static func invalid(_ field: String, _ message: String, fix: String? = nil, errorCode: String? = nil) -> APIError {
        APIError(.badRequest, "invalid_request_error", "\(field): \(message)" + (fix.map { ". Fix: \($0)" } ?? ""), errorCode: errorCode)
    }

    /// 422: well formed, but it does not fit the state it refers to.
    public static func unprocessable(_ field: String, _ message: String, fix: String) -> APIError {
        APIError(.unprocessableContent, "invalid_request_error", "\(field): \(message). Fix: \(fix)")
    }

    public static func notFound(_ kind: String, _ id: String, errorCode: String? = nil) -> APIError {
        APIError(.notFound, "not_found_error", "\(kind) \(id) was not found", errorCode: errorCode)
    }

    public static func notBuilt(_ what: String) -> APIError {
        APIError(.notImplemented, "api_error", "\(what) is not built yet in Drover; this endpoint answers 501 until it is")
    }

    public static let unauthorized = APIError(
        .unauthorized, "authentication_error",
        "a valid API key is required. Fix: send it as X-Api-Key or Authorization: Bearer (create one with `drover keys create --workspace NAME`)")

    /// The error body; `requestID` is the request's (`RequestLogMiddleware`), or a new one for
    /// an error that outlives its request (a broken event stream).
    public func json(requestID: String = Identifier.make(prefix: "req")) -> JSONValue {
        var error: [String: JSONValue] = ["type": .string(type), "message": .string(message)]
        if let errorCode {
            error["error_code"] = .string(errorCode)
            error["details"] = .object(details.merging(["error_code": .string(errorCode)]) { _, code in code })
        }
        return .object(["type": .string("error"), "error": .object(error), "request_id": .string(requestID)])
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = jsonResponse(json(requestID: RequestLogMiddleware.requestID(context)), status: status)
        if let retryAfterSeconds { response.headers[.retryAfter] = String(retryAfterSeconds) }
        return response
    }
}

/// A JSON body with the given status.
public func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: value.compactJSON)))
}

/// Turns every error a handler throws, and the router's own 404/405, into the API's error shape.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as FieldError {
            // The checks modules share (agents, metadata, names) name the field the same way.
            return try APIError.invalid(error.field ?? "body", error.message, fix: error.fix, errorCode: error.code).response(
                from: request, context: context)
        } catch is NIOTooManyBytesError {
            return jsonResponse(APIError.tooLarge.json(requestID: RequestLogMiddleware.requestID(context)), status: .contentTooLarge)
        } catch let error as HTTPError {
            let type = error.status == .notFound ? "not_found_error" : "invalid_request_error"
            let message =
                error.status == .notFound
                ? "\(request.method) \(request.uri.path) is not a Drover API route (see GET /v1/openapi.json)"
                : (error.body ?? "\(error.status)")
            return jsonResponse(APIError(error.status, type, message).json(requestID: RequestLogMiddleware.requestID(context)), status: error.status)
        } catch {
            context.logger.error("\(request.method) \(request.uri.path): \(error)")
            return jsonResponse(
                APIError(.internalServerError, "api_error", "internal error: \(error)").json(requestID: RequestLogMiddleware.requestID(context)),
                status: .internalServerError)
        }
    }
}

extension APIError {
    static let tooLarge = APIError(
        .contentTooLarge, "invalid_request_error",
        "body: the request body is over the limit of \(APIServer.maximumBodyBytes >> 20) MB. Fix: send less per request; put large content in files")
}
