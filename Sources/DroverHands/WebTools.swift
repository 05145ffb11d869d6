import DroverCore
import DroverEgress
import DroverHTTP
import DroverTools
import Foundation

/// `web_fetch` and `web_search` of `agent_toolset_20260401`, run by the worker (not in the
/// sandbox), under the session environment's network policy.
public struct WebTools: Sendable {
    public let gate: EgressGate
    /// A SearXNG-style JSON endpoint (`DROVER_WEB_SEARCH_URL`): `GET URL?q=...&format=json`
    /// answers `{"results": [{"title", "url", "content"}]}`.
    public let searchURL: String?
    /// The session's bearer token for a URL, from its vaults' `static_bearer` credentials: the
    /// search backend's key.
    public let bearer: (@Sendable (SessionID, String) async throws -> String?)?
    let http: CurlHTTPClient

    /// The most a fetch downloads, and the most text it returns.
    static let downloadLimit = 5 << 20
    static let defaultTextLimit = 100_000
    static let redirects = 5

    public init(
        gate: EgressGate, searchURL: String? = nil, bearer: (@Sendable (SessionID, String) async throws -> String?)? = nil,
        http: CurlHTTPClient = .shared
    ) {
        self.gate = gate
        self.searchURL = searchURL
        self.bearer = bearer
        self.http = http
    }

    static let definitions: [ModelToolDefinition] = [
        ModelToolDefinition(
            name: "web_fetch",
            description:
                "Fetch a web page (http or https) and return its text; HTML is reduced to readable text. Allowed hosts follow the session's network policy.",
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "url": .object(["type": "string"]),
                    "max_length": .object(["type": "integer", "description": "the most characters of text to return (default 100000)"]),
                ]),
                "required": .array(["url"]),
            ])),
        ModelToolDefinition(
            name: "web_search",
            description: "Search the web; returns titles, URLs and snippets.",
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "query": .object(["type": "string"]),
                    "max_results": .object(["type": "integer", "description": "at most this many results (default 10)"]),
                ]),
                "required": .array(["query"]),
            ])),
    ]

    public struct Outcome: Sendable {
        public var result: ToolResult
        /// What the fetch asked of the network, for the session's egress counts.
        public var usage: [(key: EgressUsage.Key, counts: EgressUsage.Counts)] = []
    }

    // MARK: web_fetch

    public func fetch(_ input: [String: JSONValue], policy: NetworkPolicy, mcpHosts: [String]) async -> Outcome {
        guard case .string(let start)? = input["url"], !start.isEmpty else {
            return Outcome(result: .text("web_fetch needs url, an http or https URL", isError: true))
        }
        let limit = input["max_length"]?.intValue.map { min(max($0, 1), 1_000_000) } ?? Self.defaultTextLimit
        guard !policy.isOffline else {
            return Outcome(
                result: .text(
                    "web_fetch: this session's environment has no network. Fix: set the environment's config.networking (limited with allowed_hosts, or unrestricted)",
                    isError: true))
        }
        var outcome = Outcome(result: .text(""))
        var url = start
        for _ in 0...Self.redirects {
            guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme),
                let host = components.host, !host.isEmpty, components.user == nil
            else {
                outcome.result = .text("web_fetch: '\(url.prefix(300))' is not an http or https URL with a host (and no credentials)", isError: true)
                return outcome
            }
            let port = components.port ?? (scheme == "https" ? 443 : 80)
            let decision = await gate.decide(host: host, port: port, policy: policy, mcpHosts: mcpHosts)
            let pin: [String]
            switch decision {
            case .failure(let refusal):
                outcome.usage.append((EgressUsage.Key(host: HostPattern.normalize(host), port: port, verdict: refusal.verdict), .init(requests: 1)))
                outcome.result = .text("web_fetch: \(refusal.description)", isError: true)
                return outcome
            case .success(let resolved):
                pin = EgressGate.pin(host: host, port: port, to: resolved)
            }
            var request = HTTPRequest(
                url: url, method: "GET",
                headers: [("Accept", "text/html, text/plain, application/json;q=0.9, */*;q=0.5"), ("User-Agent", "Drover web_fetch")],
                connectTimeout: .seconds(15), readTimeout: .seconds(60))
            request.resolve = pin
            var status = 0
            var headers: [String: String] = [:]
            var body: [UInt8] = []
            var truncated = false
            do {
                for try await part in http.stream(request) {
                    switch part {
                    case .head(let code, let responseHeaders):
                        status = code
                        headers = responseHeaders
                    case .body(let bytes):
                        body += bytes
                        if body.count > Self.downloadLimit {
                            body.removeLast(body.count - Self.downloadLimit)
                            truncated = true
                        }
                    }
                    if truncated { break }
                }
            } catch {
                outcome.usage.append(
                    (EgressUsage.Key(host: HostPattern.normalize(host), port: port, verdict: "failed: web_fetch"), .init(requests: 1)))
                outcome.result = .text("web_fetch: \(url.prefix(300)) could not be fetched: \(error)", isError: true)
                return outcome
            }
            outcome.usage.append(
                (
                    EgressUsage.Key(host: HostPattern.normalize(host), port: port, verdict: EgressUsage.Key.allowed),
                    .init(requests: 1, bytesReceived: body.count)
                ))
            // Each hop of a redirect is decided again: a public page cannot send the worker to
            // the host's loopback or the metadata service.
            if (300..<400).contains(status), let location = headers["location"], let next = URL(string: location, relativeTo: URL(string: url)) {
                url = next.absoluteString
                continue
            }
            outcome.result = Self.render(
                url: url, status: status, contentType: headers["content-type"] ?? "", body: body, truncated: truncated, limit: limit)
            return outcome
        }
        outcome.result = .text("web_fetch: \(start.prefix(300)) redirected more than \(Self.redirects) times", isError: true)
        return outcome
    }

    static func render(url: String, status: Int, contentType: String, body: [UInt8], truncated: Bool, limit: Int) -> ToolResult {
        let type = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let textual = type.isEmpty || type.hasPrefix("text/") || type.hasSuffix("json") || type.hasSuffix("xml") || type.hasSuffix("javascript")
        guard textual else {
            return .text("\(url) (HTTP \(status)) is \(type), \(body.count) bytes: not text, so not shown", isError: !(200..<300).contains(status))
        }
        var text = String(decoding: body, as: UTF8.self)
        if type == "text/html" || type == "application/xhtml+xml" || (type.isEmpty && text.prefix(1000).lowercased().contains("<html")) {
            text = HTMLText.readable(text)
        }
        var cut = truncated
        if text.count > limit {
            text = String(text.prefix(limit))
            cut = true
        }
        let header = "\(url) (HTTP \(status), \(type.isEmpty ? "no content type" : type))\(cut ? ", cut short" : "")\n\n"
        return .text(header + text, isError: !(200..<300).contains(status))
    }

    // MARK: web_search

    public func search(_ input: [String: JSONValue], session: SessionID) async -> ToolResult {
        guard case .string(let query)? = input["query"], !query.trimmingCharacters(in: .whitespaces).isEmpty else {
            return .text("web_search needs query, the words to search for", isError: true)
        }
        guard let searchURL, var components = URLComponents(string: searchURL) else {
            return .text(
                "web_search is not configured on this worker. Fix: the operator sets DROVER_WEB_SEARCH_URL to a SearXNG-style JSON endpoint (GET URL?q=...&format=json); a static_bearer credential for that URL in one of the session's vaults is sent as its key",
                isError: true)
        }
        let count = input["max_results"]?.intValue.map { min(max($0, 1), 50) } ?? 10
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "q", value: query), URLQueryItem(name: "format", value: "json")]
        guard let url = components.url?.absoluteString else { return .text("web_search: DROVER_WEB_SEARCH_URL is not a URL", isError: true) }
        var headers = [("Accept", "application/json")]
        do {
            if let token = try await bearer?(session, searchURL) { headers.append(("Authorization", "Bearer \(token)")) }
        } catch {
            return .text("web_search: the session's vault credential for the search backend could not be read: \(error)", isError: true)
        }
        let answer: (status: Int, headers: [String: String], body: [UInt8])
        do {
            answer = try await http.send(
                HTTPRequest(url: url, method: "GET", headers: headers, connectTimeout: .seconds(10), readTimeout: .seconds(30)))
        } catch {
            return .text("web_search: the search backend could not be reached: \(error)", isError: true)
        }
        guard (200..<300).contains(answer.status) else {
            return .text("web_search: the search backend answered HTTP \(answer.status)", isError: true)
        }
        guard let results = (try? JSONValue.parse(String(decoding: answer.body, as: UTF8.self)))?.objectValue?["results"]?.arrayValue else {
            return .text("web_search: the search backend's answer has no results list", isError: true)
        }
        let lines = results.prefix(count).enumerated().map { index, item -> String in
            let fields = item.objectValue ?? [:]
            let title = fields["title"]?.stringValue ?? "(no title)"
            let link = fields["url"]?.stringValue ?? ""
            let snippet = fields["content"]?.stringValue ?? ""
            return "\(index + 1). \(title)\n   \(link)\(snippet.isEmpty ? "" : "\n   \(snippet.prefix(500))")"
        }
        return .text(lines.isEmpty ? "no results for \(query)" : lines.joined(separator: "\n"))
    }
}

/// HTML reduced to the text a reader sees: scripts, styles and comments dropped, block elements
/// as line breaks, entities decoded, runs of blank space collapsed.
enum HTMLText {
    static func readable(_ html: String) -> String {
        var text = html
        for pattern in ["<!--[\\s\\S]*?-->", "<(script|style|noscript|template|svg|head)\\b[\\s\\S]*?</\\1\\s*>"] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: [.regularExpression, .caseInsensitive])
        }
        let title = html.range(of: "<title[^>]*>([\\s\\S]*?)</title>", options: [.regularExpression, .caseInsensitive]).map {
            decode(String(html[$0]).replacingOccurrences(of: "<[^>]+>", with: "", options: .regularExpression))
        }
        text = text.replacingOccurrences(
            of: "<(br|/p|/div|/ul|/ol|/h[1-6]|/tr|/section|/article|/header|/footer|/blockquote|/pre|hr)\\b[^>]*>", with: "\n",
            options: [.regularExpression, .caseInsensitive])
        text = text.replacingOccurrences(of: "<li\\b[^>]*>", with: "\n- ", options: [.regularExpression, .caseInsensitive])
        text = text.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
        text = decode(text)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "[ \\t\\r\\f\\x{00A0}]+", with: " ", options: .regularExpression).trimmingCharacters(in: .whitespaces)
        }
        var out: [String] = []
        for line in lines where !(line.isEmpty && (out.last?.isEmpty ?? true)) { out.append(line) }
        let body = out.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if let title, !title.trimmingCharacters(in: .whitespaces).isEmpty { return "# " + title.trimmingCharacters(in: .whitespaces) + "\n\n" + body }
        return body
    }

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let named = [
            "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "#39": "'", "mdash": "—", "ndash": "–", "hellip": "…",
            "copy": "©",
        ]
        var result = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            result += rest[..<amp]
            let after = rest[rest.index(after: amp)...]
            if let semi = after.prefix(12).firstIndex(of: ";") {
                let name = String(after[..<semi])
                var replacement: String?
                if let value = named[name] {
                    replacement = value
                } else if name.hasPrefix("#x") || name.hasPrefix("#X"), let code = UInt32(name.dropFirst(2), radix: 16),
                    let scalar = Unicode.Scalar(code)
                {
                    replacement = String(Character(scalar))
                } else if name.hasPrefix("#"), let code = UInt32(name.dropFirst()), let scalar = Unicode.Scalar(code) {
                    replacement = String(Character(scalar))
                }
                if let replacement {
                    result += replacement
                    rest = after[after.index(after: semi)...]
                    continue
                }
            }
            result += "&"
            rest = after
        }
        return result + rest
    }
}
