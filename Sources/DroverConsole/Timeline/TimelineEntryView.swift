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
