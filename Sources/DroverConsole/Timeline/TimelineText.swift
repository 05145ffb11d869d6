import Foundation

/// A timeline as terminal text (`drover sessions replay`): one line per event, and what runs to
/// many lines (a traceback, a file, a script) as an indented block under it, cut to
/// `maxLines` lines of `width` characters unless `full`.
public struct TimelineText: Sendable {
    public var width = 100
    public var maxLines = 20
    public var full = false

    public init(width: Int = 100, maxLines: Int = 20, full: Bool = false) {
        self.width = max(width, 20)
        self.maxLines = max(maxLines, 1)
        self.full = full
    }

    /// The column blocks start at: under the title.
    static let gutter = String(repeating: " ", count: 30) + "│ "

    public func lines(_ entry: SessionTimeline.Entry) -> [String] {
        let stamp = String(format: "%8.3fs", entry.offset)
        let who = entry.kind.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
        let seq = String(entry.seq).padding(toLength: 4, withPad: " ", startingAt: 0)
        var title = entry.title
        if entry.kind == .toolResult, let seconds = entry.seconds { title += String(format: " (%.2fs)", seconds) }
        let head = "\(stamp)  #\(seq) \(who) "
        guard let body = entry.body, !body.isEmpty else { return [head + title] }
        // A message's title says nothing its text does not: the text takes its place.
        let prefix = entry.title == "message" ? "" : "\(title): "
        if !body.contains("\n"), full || prefix.count + body.count <= width { return [head + prefix + body] }
        // The first line stays on the event's line; the rest is a block under it.
        var bodyLines = body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let first = bodyLines.removeFirst()
        var lines = [head + prefix + clip(first, to: width - prefix.count)]
        let shown = full ? bodyLines : Array(bodyLines.prefix(maxLines - 1))
        lines += shown.map { Self.gutter + clip($0, to: width) }
        if shown.count < bodyLines.count {
            lines.append(Self.gutter + "… \(bodyLines.count - shown.count) more lines (--full shows them)")
        }
        return lines
    }

    private func clip(_ line: String, to limit: Int) -> String {
        full || line.count <= max(limit, 10) ? line : String(line.prefix(max(limit, 10) - 1)) + "…"
    }

    public func render(_ timeline: SessionTimeline) -> String {
        timeline.entries.flatMap(lines).joined(separator: "\n")
    }
}
