import DroverBrain
import DroverCore
import DroverSessionLog
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle

/// `GET /v1/sessions/{id}/events/stream`: server-sent events.
///
/// - Replays from where the client asks (the `Last-Event-ID` header or the `after_id` query
///   parameter, an event id), else starts at the current end of the log; then follows live.
/// - `event_deltas=agent.message` adds previews: `event_start`, then `event_delta` with
///   `content_delta` fragments from the brain's Redis pub/sub deltas, before the final event.
/// - `ping` every `pingInterval`. Writing the ping is also how a dropped client is noticed: the
///   write fails, and the stream's tasks and Redis connections end with it.
/// - The live parts come from `SessionEventHub`: all streams on one session share one log tail
///   and one delta subscription.
extension EventController {
    func eventStream(_ session: SessionID, workspace: String, request: Request) async throws -> Response {
        // A soft cap, checked here and counted while the body runs, so a stream whose body never
        // starts cannot leak a count.
        guard openStreams.value[workspace, default: 0] < options.maxStreamsPerWorkspace else {
            throw APIError(
                .tooManyRequests, "rate_limit_error",
                "this workspace has \(options.maxStreamsPerWorkspace) event streams open. Fix: close streams you no longer read, then retry",
                retryAfterSeconds: 1)
        }
        let input = RequestInput(request)
        let deltas = try Set(
            (input.query["event_deltas"] ?? []).map { raw in
                guard let type = SessionEventType(rawValue: raw), type == .agentMessage || type == .agentThinking else {
                    throw APIError.invalid("event_deltas", "'\(raw)' has no previews", fix: "use agent.message or agent.thinking")
                }
                return type
            })
        let start: Int64
        if let asked = request.headers[.init("last-event-id")!] ?? input.string("after_id") {
            guard let seq = Self.seq(fromEventID: asked, session: session) else {
                throw APIError.invalid(
                    "after_id", "'\(asked.prefix(80))' is not an event id of this session",
                    fix: "pass the id of an event from this session, or omit it to start at the end")
            }
            start = seq
        } else {
            // Taken before the response starts, so an event sent after `stream()` returns is never missed.
            start = try await sessionLogCall { try await log.lastSeq(session) }
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let hub = self.hub, ping = options.pingInterval, openStreams = self.openStreams
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                openStreams.withLock { $0[workspace, default: 0] += 1 }
                defer { openStreams.withLock { $0[workspace, default: 0] -= 1 } }
                let (frames, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(100_000))
                let preview = Locked(Preview.closed)
                // On shutdown the stream ends cleanly instead of holding the server open.
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            do {
                                for try await event in hub.events(session, after: start) {
                                    preview.withLock { $0 = $0.after(event.kind) }
                                    continuation.yield(Self.frame(event: event.type, id: event.id, data: event.json))
                                }
                            } catch is CancellationError {
                            } catch {
                                let failure = APIError(
                                    .serviceUnavailable, "api_error", "the event stream broke: \(error). Fix: reconnect with Last-Event-ID")
                                continuation.yield(Self.frame(event: "error", id: nil, data: failure.json().compactJSON))
                            }
                            continuation.finish()
                        }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: ping)
                                continuation.yield(Self.frame(event: "ping", id: nil, data: "{\"type\":\"ping\"}"))
                            }
                        }
                        if deltas.contains(.agentMessage) {
                            group.addTask { try await Self.followDeltas(hub.deltas(session), preview: preview, into: continuation) }
                        }
                        for await frame in frames {
                            try await writer.write(ByteBuffer(string: frame))
                        }
                        group.cancelAll()
                    }
                } onGracefulShutdown: {
                    continuation.finish()
                }
                try await writer.finish(nil)
            })
    }

    static func frame(event: String, id: String?, data: String) -> String {
        var text = "event: \(event)\n"
        if let id { text += "id: \(id)\n" }
        return text + "data: \(data)\n\n"
    }

    /// The sequence number in an event id `sevt_<session>_<seq>`, if it belongs to the session.
    static func seq(fromEventID id: String, session: SessionID) -> Int64? {
        guard let underscore = id.lastIndex(of: "_"), let seq = Int64(id[id.index(after: underscore)...]), seq >= 0 else { return nil }
        let expected = SessionLog.eventID(session, seq: seq)
        return expected == id ? seq : nil
    }

    /// Where a stream is in previewing the current model request's message. Pub/sub deltas and
    /// log events travel separately, so deltas are only shown between a `span.model_request_start`
    /// and the request's `agent.message` or `span.model_request_end`; late ones are dropped.
    enum Preview: Sendable {
        case closed
        /// Open; the id once `event_start` was sent.
        case open(String?)

        func after(_ eventType: SessionEventType?) -> Preview {
            switch eventType {
            case .spanModelRequestStart: .open(nil)
            case .agentMessage, .spanModelRequestEnd: .closed
            default: self
            }
        }
    }

    /// Turns the brain's delta messages into `event_start`/`event_delta` previews. The preview id
    /// is Drover's own (`sevt_preview_...`): the final event's id is only known once it is appended.
    static func followDeltas(
        _ deltas: AsyncThrowingStream<String, Error>, preview: Locked<Preview>, into continuation: AsyncStream<String>.Continuation
    ) async throws {
        for try await payload in deltas {
            switch MessageDelta(json: payload) {
            case .text(let index, let text):
                let next = preview.withLock { state -> (id: String, started: Bool)? in
                    switch state {
                    case .closed: return nil
                    case .open(let id?): return (id, false)
                    case .open(nil):
                        let fresh = Identifier.make(prefix: "sevt_preview")
                        state = .open(fresh)
                        return (fresh, true)
                    }
                }
                guard let (id, started) = next else { continue }
                if started {
                    continuation.yield(
                        frame(
                            event: "event_start", id: nil,
                            data: JSONValue.object([
                                "type": "event_start",
                                "event": .object(["type": .string(SessionEventType.agentMessage.rawValue), "id": .string(id)]),
                            ]).compactJSON))
                }
                continuation.yield(
                    frame(
                        event: "event_delta", id: nil,
                        data: JSONValue.object([
                            "type": "event_delta", "event_id": .string(id),
                            "delta": .object([
                                "type": "content_delta", "index": .number(Double(index)), "content": ContentBlock.text(text).wireValue,
                            ]),
                        ]).compactJSON))
            case .reset:
                preview.withLock { if case .open = $0 { $0 = .open(nil) } }
            case nil:
                continue
            }
        }
    }
}
