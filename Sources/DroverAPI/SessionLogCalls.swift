import DroverCore
import DroverSessionLog
import Foundation

/// Runs a session-log call, turning its errors into API errors.
func sessionLogCall<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as SessionLogError {
        throw APIError(sessionLogError: error)
    }
}

/// Events a client sent (a body, or a deployment's `initial_events`), with errors naming `field`.
func parseClientEvents(_ text: String, field: String = "events") throws -> [NewEvent] {
    do {
        return try NewEvent.parseClientEvents(text)
    } catch {
        throw APIError(sessionLogError: error, field: field)
    }
}

extension APIError {
    init(sessionLogError error: SessionLogError, field: String? = nil) {
        switch error {
        case .invalidInput(let name, let message, let fix):
            let named = field.map { name == "events" || name == "body" ? $0 : name.replacingOccurrences(of: "events[", with: "\($0)[") } ?? name
            self = APIError.invalid(named, message, fix: fix)
        case .eventTooLarge: self = APIError(.contentTooLarge, "invalid_request_error", error.description)
        case .sessionNotFound(let id): self = APIError.notFound("session", id)
        case .sessionTerminated: self = APIError(.conflict, "invalid_request_error", error.description)
        // 422, not 409: the SDK retries a 409, and sending the result again cannot succeed.
        case .alreadyAnswered: self = APIError(.unprocessableContent, "invalid_request_error", error.description)
        case .sessionBusy, .staleFence: self = APIError(.conflict, "invalid_request_error", error.description)
        case .redis, .database, .unexpectedReply: self = APIError(.serviceUnavailable, "api_error", error.description)
        }
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractions: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
