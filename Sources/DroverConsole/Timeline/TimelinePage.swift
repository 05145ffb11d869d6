import DroverCore
import Foundation

/// A timeline as one HTML file that opens anywhere with no network: its style inline, no
/// script, long tool input and output folded (`<details>`), and the session's raw events
/// (JSONL) inside it too, so that whoever is sent the file can replay it or load it.
public enum TimelinePage {
    struct Export {
        let session: String
        let status: String
        let summary: TimelineSummary
        let entries: [TimelineEntryView]
        let jsonl: String
        let jsonlBase64: String
        let exportedAt: String
    }

    public static func render(_ timeline: SessionTimeline, jsonl: String, exportedAt: Date = Date()) -> String {
        ConsoleTemplates.render(
            Export(
                session: timeline.session, status: timeline.status, summary: TimelineSummary(timeline),
                entries: timeline.entries.map(TimelineEntryView.init), jsonl: jsonl, jsonlBase64: Data(jsonl.utf8).base64EncodedString(),
                exportedAt: exportedAt.formatted(.iso8601)),
            "export")
    }

    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Session {{session}}</title>
        <style>
        \(ConsoleAssets.timelineCSS)
        body { margin: 2rem auto; max-width: 70rem; padding: 0 1rem; }
        footer { color: #888; margin-top: 2rem; font-size: .85rem; }
        </style>
        </head>
        <body>
        <header>
        <h1>Session <code>{{session}}</code></h1>
        <dl class="summary">
        <dt>Status</dt><dd class="status">{{status}}</dd>
        {{#summary}}{{> summary}}{{/summary}}
        </dl>
        </header>
        <ol class="timeline">
        {{#entries}}{{> entry}}{{/entries}}
        </ol>
        <section class="raw">
        <h2>Raw events</h2>
        <p><a download="{{session}}.jsonl" href="data:application/x-ndjson;base64,{{jsonlBase64}}">Download the JSONL</a>: one wire event per line, as <code>drover sessions export --format jsonl</code> writes it.</p>
        <details><summary>Show the JSONL</summary><pre class="jsonl">{{jsonl}}</pre></details>
        </section>
        <footer>Exported by drover on {{exportedAt}}. This file is self-contained: it needs no network to open.</footer>
        </body>
        </html>
        """
}
