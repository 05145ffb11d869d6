import DroverCore
import DroverEgress
import DroverTesting
import DroverTools
import Foundation
import NIOHTTP1
import Testing

@testable import DroverHands

private let page = """
    <!doctype html><html><head><title>Week 3 &amp; more</title><style>body { color: red }</style>
    <script>var secret = "never shown";</script></head>
    <body><h1>Reading list</h1><p>Read <b>chapter&nbsp;3</b> &mdash; then the <a href="/x">notes</a>.</p>
    <ul><li>one</li><li>two</li></ul><!-- a comment --></body></html>
    """

/// A page, a redirect to the metadata service, a JSON document and a search backend, on loopback.
private func origin() async throws -> LoopbackOrigin {
    try await LoopbackOrigin.start { head in
        switch head.uri.split(separator: "?").first.map(String.init) ?? "" {
        case "/page": LoopbackOrigin.Answer(headers: [("content-type", "text/html; charset=utf-8")], body: page)
        case "/hop": LoopbackOrigin.Answer(status: .found, headers: [("location", "/page")])
        case "/metadata": LoopbackOrigin.Answer(status: .found, headers: [("location", "http://169.254.169.254/latest/meta-data/")])
        case "/binary": LoopbackOrigin.Answer(headers: [("content-type", "image/png")], body: "PNG...")
        case "/search":
            LoopbackOrigin.Answer(
                headers: [("content-type", "application/json")],
                body:
                    #"{"results": [{"title": "Grading rubrics", "url": "https://example.org/r", "content": "How to grade"}, {"title": "Second", "url": "https://example.org/2"}]}"#
            )
        default: nil
        }
    }
}

private let limitedToLoopback = NetworkPolicy(access: .limited, allowedHosts: ["127.0.0.1"])

@Suite("Web tools")
struct WebToolsTests {
    @Test("web_fetch returns a page's readable text: no scripts, styles, tags or comments, entities decoded")
    func fetchesReadableText() async throws {
        let server = try await origin()
        let web = WebTools(gate: EgressGate())
        let outcome = await web.fetch(["url": .string("http://127.0.0.1:\(server.port)/page")], policy: limitedToLoopback, mcpHosts: [])
        let text = outcome.result.content.compactMap(\.text).joined()
        #expect(!outcome.result.isError, "\(text)")
        #expect(text.contains("# Week 3 & more") && text.contains("Reading list") && text.contains("Read chapter 3 — then the notes."), "\(text)")
        #expect(text.contains("- one\n- two"), "\(text)")
        #expect(!text.contains("never shown") && !text.contains("color: red") && !text.contains("<") && !text.contains("comment"), "\(text)")
        #expect(outcome.usage.map(\.key.verdict) == ["allowed"])
        // A redirect is followed, and each hop is decided.
        let hopped = await web.fetch(["url": .string("http://127.0.0.1:\(server.port)/hop")], policy: limitedToLoopback, mcpHosts: [])
        #expect(hopped.result.content.compactMap(\.text).joined().contains("Reading list"))
        let capped = await web.fetch(
            ["url": .string("http://127.0.0.1:\(server.port)/page"), "max_length": 10], policy: limitedToLoopback, mcpHosts: [])
        #expect(capped.result.content.compactMap(\.text).joined().contains("cut short"))
        let binary = await web.fetch(["url": .string("http://127.0.0.1:\(server.port)/binary")], policy: limitedToLoopback, mcpHosts: [])
        #expect(binary.result.content.compactMap(\.text).joined().contains("image/png, 6 bytes: not text"))
        await server.stop()
    }

    @Test("web_fetch follows the session's policy: no network, unlisted hosts, loopback and a redirect to the metadata service are refused")
    func fetchIsPoliced() async throws {
        let server = try await origin()
        let web = WebTools(gate: EgressGate())
        let url: JSONValue = .string("http://127.0.0.1:\(server.port)/page")
        let offline = await web.fetch(["url": url], policy: .offline, mcpHosts: [])
        #expect(offline.result.isError && offline.result.content.compactMap(\.text).joined().contains("has no network"))
        let unlisted = await web.fetch(["url": url], policy: NetworkPolicy(access: .limited, allowedHosts: ["example.org"]), mcpHosts: [])
        #expect(unlisted.result.isError && unlisted.usage.map(\.key.verdict) == ["refused: host not allowed"])
        let loopback = await web.fetch(["url": url], policy: NetworkPolicy(access: .unrestricted), mcpHosts: [])
        #expect(loopback.result.isError && loopback.result.content.compactMap(\.text).joined().contains("loopback"))
        let redirected = await web.fetch(
            ["url": .string("http://127.0.0.1:\(server.port)/metadata")], policy: limitedToLoopback, mcpHosts: [])
        #expect(redirected.result.isError && redirected.usage.map(\.key.verdict) == ["allowed", "refused: host not allowed"], "\(redirected.usage)")
        let scheme = await web.fetch(["url": "file:///etc/passwd"], policy: limitedToLoopback, mcpHosts: [])
        #expect(scheme.result.isError && scheme.result.content.compactMap(\.text).joined().contains("not an http or https URL"))
        #expect(server.requests.map(\.uri) == ["/metadata"])
        await server.stop()
    }

    @Test("web_search says how to configure it, and with a backend lists its results, with the session's vault token as its key")
    func search() async throws {
        let unconfigured = await WebTools(gate: EgressGate()).search(["query": "rubrics"], session: SessionID.make())
        #expect(unconfigured.isError && unconfigured.content.compactMap(\.text).joined().contains("DROVER_WEB_SEARCH_URL"))
        let server = try await origin()
        let session = SessionID.make()
        let backend = "http://127.0.0.1:\(server.port)/search"
        let web = WebTools(
            gate: EgressGate(), searchURL: backend, bearer: { asking, url in asking == session && url == backend ? "search-key" : nil })
        let found = await web.search(["query": "grading rubrics"], session: session)
        let text = found.content.compactMap(\.text).joined()
        #expect(
            !found.isError && text.contains("1. Grading rubrics\n   https://example.org/r\n   How to grade") && text.contains("2. Second"), "\(text)")
        let request = try #require(server.requests.last)
        #expect(request.uri.contains("q=grading%20rubrics") && request.uri.contains("format=json"), "\(request.uri)")
        #expect(request.headers["authorization"] == ["Bearer search-key"])
        await server.stop()
    }
}
