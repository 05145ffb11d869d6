import DroverCore
import Foundation
import Mustache

/// A timeline as one HTML file that opens anywhere with no network: its style inline, no
/// script, long tool input and output folded (`<details>`), and the session's raw events
/// (JSONL) inside it too, so that whoever is sent the file can replay it or load it.
public enum TimelinePage {
    /// Bodies over this many lines, or characters, start folded.
    static let foldLines = 12
    static let foldCharacters = 1500

    public static func render(_ timeline: SessionTimeline, jsonl: String, exportedAt: Date = Date()) -> String {
        let entries: [[String: Any]] = timeline.entries.map { entry in
            var fields: [String: Any] = [
                "seq": String(entry.seq), "offset": String(format: "%.3fs", entry.offset), "kind": entry.kind.rawValue,
                "kindClass": entry.kind.rawValue.replacingOccurrences(of: " ", with: "-"), "title": entry.title, "type": entry.type,
                "isError": entry.isError,
            ]
            if entry.kind == .toolResult, let seconds = entry.seconds { fields["took"] = String(format: "%.2fs", seconds) }
            if let body = entry.body, !body.isEmpty {
                let lineCount = body.split(separator: "\n", omittingEmptySubsequences: false).count
                fields["body"] =
                    [
                        "text": body, "lineCount": String(lineCount), "folded": lineCount > foldLines || body.count > foldCharacters,
                        "preview": String(body.prefix { $0 != "\n" }.prefix(100)),
                    ] as [String: Any]
            }
            return fields
        }
        let context: [String: Any] = [
            "session": timeline.session, "status": timeline.status,
            "started": timeline.startedAt.map { $0.formatted(.iso8601) } ?? "-",
            "duration": String(format: "%.1fs", timeline.seconds), "eventCount": String(timeline.entries.count),
            "modelRequests": String(timeline.modelRequests), "toolCalls": String(timeline.toolCalls),
            "inputTokens": String(timeline.inputTokens), "outputTokens": String(timeline.outputTokens),
            "entries": entries, "jsonl": jsonl, "jsonlBase64": Data(jsonl.utf8).base64EncodedString(),
            "exportedAt": exportedAt.formatted(.iso8601),
        ]
        return template.render(context)
    }

    // Parsed once; a template that does not parse is a bug the tests catch at once.
    static let template = try! MustacheTemplate(string: html)

    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Session {{session}}</title>
        <style>
        body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1d1f21; }
        h1 { font-size: 1.3rem; } h1 code { font-size: 1.1rem; }
        dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
        dl.summary dt { color: #666; } dl.summary dd { margin: 0; }
        ol.timeline { list-style: none; padding: 0; border-top: 1px solid #ddd; }
        li.entry { padding: .35rem 0; border-bottom: 1px solid #eee; }
        .at { color: #888; font-variant-numeric: tabular-nums; display: inline-block; width: 6rem; }
        .seq { color: #888; text-decoration: none; display: inline-block; width: 3.5rem; }
        .kind { display: inline-block; width: 7rem; font-weight: 600; }
        .kind-user .kind { color: #0b5cad; } .kind-agent .kind { color: #1a7f37; } .kind-tool .kind, .kind-tool-result .kind { color: #8250df; }
        .kind-model .kind, .kind-status .kind { color: #888; font-weight: normal; }
        .error .kind, .error .title { color: #cf222e; }
        .took { color: #888; }
        pre { background: #f6f8fa; padding: .5rem .75rem; margin: .35rem 0 0 16.5rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
        details { margin-left: 16.5rem; } details pre { margin-left: 0; } summary { cursor: pointer; color: #555; }
        section.raw details, section.raw details pre { margin-left: 0; }
        footer { color: #888; margin-top: 2rem; font-size: .85rem; }
        </style>
        </head>
        <body>
        <header>
        <h1>Session <code>{{session}}</code></h1>
        <dl class="summary">
        <dt>Status</dt><dd class="status">{{status}}</dd>
        <dt>Started</dt><dd>{{started}}</dd>
        <dt>Duration</dt><dd>{{duration}}</dd>
        <dt>Events</dt><dd>{{eventCount}}</dd>
        <dt>Model requests</dt><dd>{{modelRequests}}</dd>
        <dt>Tokens</dt><dd>in {{inputTokens}} / out {{outputTokens}}</dd>
        <dt>Tool calls</dt><dd>{{toolCalls}}</dd>
        </dl>
        </header>
        <ol class="timeline">
        {{#entries}}
        <li class="entry kind-{{kindClass}}{{#isError}} error{{/isError}}" id="seq-{{seq}}" data-type="{{type}}">
        <span class="at">{{offset}}</span><a class="seq" href="#seq-{{seq}}">#{{seq}}</a><span class="kind">{{kind}}</span><span class="title">{{title}}{{#took}} <span class="took">({{took}})</span>{{/took}}</span>
        {{#body}}{{#folded}}<details><summary>{{lineCount}} lines: <code>{{preview}}</code> …</summary><pre>{{text}}</pre></details>{{/folded}}{{^folded}}<pre>{{text}}</pre>{{/folded}}{{/body}}
        </li>
        {{/entries}}
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
