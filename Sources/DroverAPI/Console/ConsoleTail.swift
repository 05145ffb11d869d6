import DroverConsole
import DroverCore
import DroverSessionLog
import Foundation
import Hummingbird

/// The session page's live tail: Server-Sent Events whose `entry` frames carry each new event
/// already drawn by the page's own template (`{"seq", "html", "status"}`), so the page's script
/// only appends them. It follows the same shared log tail as the API's event streams, and
/// counts against the same per-workspace limit.
struct ConsoleTail: Sendable {
    let log: SessionLog
    let hub: SessionEventHub
    let openStreams: Locked<[String: Int]>
    let pingInterval: Duration
    let maxStreamsPerWorkspace: Int

    func stream(_ session: SessionID, workspace: String, request: Request) async throws -> Response {
        try EventController.checkStreamLimit(openStreams, workspace: workspace, limit: maxStreamsPerWorkspace)
        let asked = request.headers[.init("last-event-id")!] ?? request.uri.queryParameters["after"].map(String.init) ?? "0"
        guard let after = Int64(asked), after >= 0 else {
            throw APIError.invalid("after", "'\(asked.prefix(40))' is not a sequence number", fix: "reload the session page")
        }
        // The events before `after` are already on the page; the builder needs them to time
        // tool results and model requests that end later.
        var builder = SessionTimeline.Builder()
        try await sessionLogCall {
            try await log.replay(session, afterSeq: 0) { event in
                if event.seq <= after { _ = builder.add(event) }
            }
        }
        let hub = self.hub
        let initial = builder
        return EventController.eventStreamResponse(
            openStreams: openStreams, workspace: workspace, ping: pingInterval, pingFrame: ": ping\n\n",
            producers: [
                { continuation in
                    var builder = initial
                    do {
                        for try await event in hub.events(session, after: after) {
                            let entry = builder.add(event)
                            var data: [String: JSONValue] = [
                                "seq": .number(Double(event.seq)), "html": .string(ConsolePages.html(TimelineEntryView(entry))),
                            ]
                            if event.type.hasPrefix("session.status_") {
                                data["status"] = .string(String(event.type.dropFirst("session.status_".count)))
                            }
                            continuation.yield(EventController.frame(event: "entry", id: String(event.seq), data: JSONValue.object(data).compactJSON))
                        }
                    } catch is CancellationError {
                    } catch {
                        continuation.yield(EventController.frame(event: "broken", id: nil, data: "{}"))
                    }
                }
            ])
    }
}
