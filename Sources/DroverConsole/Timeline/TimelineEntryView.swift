import Foundation

/// One timeline entry as the HTML pages draw it (the shared export and the console's session
/// page): long bodies start folded.
public struct TimelineEntryView: Sendable {
    public struct Body: Sendable {
        public let text: String
        public let lineCount: Int
        public let folded: Bool
        /// The first line, cut, for the folded summary.
        public let preview: String
    }

    /// Bodies over this many lines, or characters, start folded.
    static let foldLines = 12
    static let foldCharacters = 1500

    public let seq: String
    public let offset: String
    public let kind: String
    public let kindClass: String
    public let title: String
    public let type: String
    public let isError: Bool
    public let took: String?
    public let body: Body?

    public init(_ entry: SessionTimeline.Entry) {
        seq = String(entry.seq)
        offset = String(format: "%.3fs", entry.offset)
        kind = entry.kind.rawValue
        kindClass = entry.kind.rawValue.replacingOccurrences(of: " ", with: "-")
        title = entry.title
        type = entry.type
        isError = entry.isError
        took = entry.kind == .toolResult ? entry.seconds.map { String(format: "%.2fs", $0) } : nil
        body = entry.body.flatMap { text in
            guard !text.isEmpty else { return nil }
            let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
            return Body(
                text: text, lineCount: lineCount, folded: lineCount > Self.foldLines || text.count > Self.foldCharacters,
                preview: String(text.prefix { $0 != "\n" }.prefix(100)))
        }
    }
}

/// A timeline's totals as the pages show them.
public struct TimelineSummary: Sendable {
    public let started: String
    public let duration: String
    public let eventCount: Int
    public let modelRequests: Int
    public let toolCalls: Int
    public let inputTokens: Int
    public let outputTokens: Int

    public init(_ timeline: SessionTimeline) {
        started = timeline.startedAt.map { $0.formatted(.iso8601) } ?? "-"
        duration = String(format: "%.1fs", timeline.seconds)
        eventCount = timeline.entries.count
        modelRequests = timeline.modelRequests
        toolCalls = timeline.toolCalls
        inputTokens = timeline.inputTokens
        outputTokens = timeline.outputTokens
    }
}

/// A session's threads side by side: one column per thread, one row per event, in the order
/// they happened across all of them, so a coordinator's fan-out and the replies read as one
/// timeline.
public struct ThreadLanes: Sendable {
    public struct Lane: Sendable {
        public let name: String
        public let id: String
        public let status: String

        public init(name: String, id: String, status: String) {
            self.name = name
            self.id = id
            self.status = status
        }
    }

    public struct Cell: Sendable {
        public let entry: TimelineEntryView?
    }

    public struct Row: Sendable {
        /// Seconds since the first event of any lane.
        public let at: String
        public let cells: [Cell]
    }

    public let lanes: [Lane]
    public let rows: [Row]
    /// Rows left out, the oldest, to keep the page small; nil when none are.
    public let omitted: Int?

    /// `timelines` in lane order: the primary thread's first.
    public init(_ timelines: [(lane: Lane, timeline: SessionTimeline)], shown: Int) {
        lanes = timelines.map(\.lane)
        var all: [(at: Date, lane: Int, entry: SessionTimeline.Entry)] = []
        for (index, item) in timelines.enumerated() {
            guard let start = item.timeline.startedAt else { continue }
            for entry in item.timeline.entries { all.append((start.addingTimeInterval(entry.offset), index, entry)) }
        }
        all.sort { ($0.at, $0.lane, $0.entry.seq) < ($1.at, $1.lane, $1.entry.seq) }
        let first = all.first?.at
        let kept = all.suffix(max(0, shown))
        omitted = all.count > kept.count ? all.count - kept.count : nil
        let width = timelines.count
        rows = kept.map { item in
            Row(
                at: String(format: "%.3fs", first.map { item.at.timeIntervalSince($0) } ?? 0),
                cells: (0..<width).map { $0 == item.lane ? Cell(entry: TimelineEntryView(item.entry)) : Cell(entry: nil) })
        }
    }
}
