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
        try Self.checkStreamLimit(openStreams, workspace: workspace, limit: options.maxStreamsPerWorkspace)
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
        let hub = self.hub
        let preview = Locked(Preview.closed)
        var producers: [@Sendable (AsyncStream<String>.Continuation) async throws -> Void] = [
            { continuation in
                do {
                    for try await event in hub.events(session, after: start) {
                        preview.withLock { $0 = $0.after(event.kind) }
                        continuation.yield(Self.frame(event: event.type, id: event.id, data: event.json))
                    }
                } catch is CancellationError {
                } catch {
                    let failure = APIError(.serviceUnavailable, "api_error", "the event stream broke: \(error). Fix: reconnect with Last-Event-ID")
                    continuation.yield(Self.frame(event: "error", id: nil, data: failure.json().compactJSON))
                }
            }
        ]
        if deltas.contains(.agentMessage) {
            producers.append { continuation in try await Self.followDeltas(hub.deltas(session), preview: preview, into: continuation) }
        }
        return Self.eventStreamResponse(
            openStreams: openStreams, workspace: workspace, ping: options.pingInterval,
            pingFrame: Self.frame(event: "ping", id: nil, data: "{\"type\":\"ping\"}"), producers: producers)
    }

    /// A soft cap on a workspace's open streams (the API's and the console's tails), checked
    /// before a stream starts and counted while its body runs.
    static func checkStreamLimit(_ openStreams: Locked<[String: Int]>, workspace: String, limit: Int) throws {
        guard openStreams.value[workspace, default: 0] < limit else {
            throw APIError(
                .tooManyRequests, "rate_limit_error",
                "this workspace has \(limit) event streams open. Fix: close streams (and console pages following sessions) you no longer read, then retry",
                retryAfterSeconds: 1)
        }
    }

    /// An event stream's response: the frames its producers yield, a `pingFrame` every `ping`
    /// (writing it is also how a dropped client is noticed), counted in `openStreams` while the
    /// body runs (so a body that never starts cannot leak a count), and ended cleanly on
    /// shutdown. It ends when the first producer returns; the others run beside it until then.
    static func eventStreamResponse(
        openStreams: Locked<[String: Int]>, workspace: String, ping: Duration, pingFrame: String,
        producers: [@Sendable (AsyncStream<String>.Continuation) async throws -> Void]
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                openStreams.withLock { $0[workspace, default: 0] += 1 }
                defer { openStreams.withLock { $0[workspace, default: 0] -= 1 } }
                let (frames, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(100_000))
                // On shutdown the stream ends cleanly instead of holding the server open.
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (index, produce) in producers.enumerated() {
                            group.addTask {
                                try await produce(continuation)
                                if index == 0 { continuation.finish() }
                            }
                        }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: ping)
                                continuation.yield(pingFrame)
                            }
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

    /// Turns the brain's delta messages into `event_start`/`event_delta` previews. The preview's id
    /// is the one the brain expects the final `agent.message` to get, so a client reconciles the
    /// two by id, as the SDK documents. An event appended by someone else while the message
    /// streams (a `user.interrupt`) takes that id's place; a brain too old to say uses a
    /// `sevt_preview_` id.
    static func followDeltas(
        _ deltas: AsyncThrowingStream<String, Error>, preview: Locked<Preview>, into continuation: AsyncStream<String>.Continuation
    ) async throws {
        for try await payload in deltas {
            switch MessageDelta(json: payload) {
            case .text(let index, let text, let eventId):
                let next = preview.withLock { state -> (id: String, started: Bool)? in
                    switch state {
                    case .closed: return nil
                    case .open(let id?): return (id, false)
                    case .open(nil):
                        let fresh = eventId ?? Identifier.make(prefix: "sevt_preview")
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
