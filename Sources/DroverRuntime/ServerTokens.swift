import DroverControlPlane
import DroverCore
import DroverDatabase
import DroverEgress
import DroverHTTP
import DroverTools
import Foundation

/// The token a session sends to an MCP server (or the web search backend): a `static_bearer`
/// credential's, or an `mcp_oauth` credential's access token, refreshed at the credential's token
/// endpoint when it is about to expire, and kept sealed again. One refresh per credential runs
/// at a time in this process; sessions that need it meanwhile wait for it.
public actor ServerTokens {
    let control: WorkerControlPlane
    var store: ControlPlaneStore { control.store }
    let gate: EgressGate
    let http: CurlHTTPClient
    private var refreshing: [String: Task<String, Error>] = [:]
    /// A token this close to its expiry is refreshed first.
    static let margin: TimeInterval = 60

    public init(control: WorkerControlPlane, gate: EgressGate, http: CurlHTTPClient = .shared) {
        self.control = control
        self.gate = gate
        self.http = http
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public func token(session: SessionID, serverURL: String) async throws -> String? {
        let (found, fromCopy) = try await control.serverCredential(session: session, serverURL: serverURL)
        switch found {
        case nil: return nil
        case .bearer(let token): return token
        case .oauth(let credential):
            guard let expiry = credential.expiresAt, expiry.timeIntervalSinceNow < Self.margin else { return credential.accessToken }
            // A refreshed token must be kept where the credential lives, and a provider may
            // retire the refresh token it replaces: only a host with the SQLite file refreshes.
            guard !fromCopy else {
                throw Failure(
                    description:
                        "the mcp_oauth credential \(credential.id) expires at \(ControlPlaneStore.timestamp(expiry)), and only a worker that shares the API's SQLite file (DROVER_DB) refreshes it. Fix: run a worker on the API's host, or update the credential's access_token and expires_at"
                )
            }
            guard let refresh = credential.refresh else {
                throw Failure(
                    description:
                        "the mcp_oauth credential \(credential.id) expired at \(ControlPlaneStore.timestamp(expiry)) and has no refresh configuration. Fix: update its access_token and expires_at"
                )
            }
            if let running = refreshing[credential.id] { return try await running.value }
            let task = Task { try await self.refresh(credential, refresh) }
            refreshing[credential.id] = task
            defer { refreshing[credential.id] = nil }
            return try await task.value
        }
    }

    /// The refresh-token grant (RFC 6749 §6) at the credential's token endpoint, reached as an
    /// agent's hosts are (public, or the operator's internal hosts; pinned to the checked address).
    private func refresh(_ credential: OAuthCredential, _ refresh: OAuthCredential.Refresh) async throws -> String {
        guard let components = URLComponents(string: refresh.tokenEndpoint), let host = components.host,
            let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme)
        else { throw Failure(description: "the mcp_oauth credential \(credential.id) has no usable token_endpoint") }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        let pin: [String]
        switch await gate.decideForAgent(host: host, port: port) {
        case .success(let resolved): pin = EgressGate.pin(host: host, port: port, to: resolved)
        case .failure(let refusal):
            throw Failure(
                description:
                    "the token endpoint of mcp_oauth credential \(credential.id) is refused (\(refusal.verdict)): \(refusal.reasonForMCP). An operator can open a private host with DROVER_INTERNAL_HOSTS"
            )
        }
        var form = [("grant_type", "refresh_token"), ("refresh_token", refresh.refreshToken)]
        var headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")]
        switch refresh.authentication {
        case "client_secret_basic":
            let pair = "\(Self.formEncode(refresh.clientID)):\(Self.formEncode(refresh.clientSecret ?? ""))"
            headers.append(("Authorization", "Basic " + Data(pair.utf8).base64EncodedString()))
        case "client_secret_post":
            form += [("client_id", refresh.clientID), ("client_secret", refresh.clientSecret ?? "")]
        default:
            form.append(("client_id", refresh.clientID))
        }
        if let scope = refresh.scope { form.append(("scope", scope)) }
        if let resource = refresh.resource { form.append(("resource", resource)) }
        var request = HTTPRequest(
            url: refresh.tokenEndpoint, method: "POST", headers: headers,
            body: Array(form.map { "\(Self.formEncode($0.0))=\(Self.formEncode($0.1))" }.joined(separator: "&").utf8),
            connectTimeout: .seconds(10), readTimeout: .seconds(30))
        request.resolve = pin
        let answer = try await http.send(request)
        let body = (try? JSONValue.parse(String(decoding: answer.body, as: UTF8.self)))?.objectValue ?? [:]
        guard (200..<300).contains(answer.status), let access = body["access_token"]?.stringValue, !access.isEmpty else {
            // The endpoint's own error code (invalid_grant, ...) says what went wrong; its body
            // is not repeated, as it may echo what was sent.
            let code = body["error"]?.stringValue.map { " (\($0.prefix(100)))" } ?? ""
            throw Failure(
                description:
                    "refreshing mcp_oauth credential \(credential.id) failed: the token endpoint answered HTTP \(answer.status)\(code). Fix: update the credential's access_token or refresh token"
            )
        }
        let expiresAt = body["expires_in"]?.intValue.map { Date().addingTimeInterval(TimeInterval($0)) }
        try await store.saveRefreshedTokens(
            credential: credential.id, accessToken: access, refreshToken: body["refresh_token"]?.stringValue, expiresAt: expiresAt,
            keyring: try control.keyring())
        // Workers on other hosts read the credential from the copy: it carries the new token too.
        if let vault = try await store.vaultOfCredential(credential.id) { try await control.replica.publish(vault: vault, from: store) }
        return access
    }

    /// `application/x-www-form-urlencoded`: everything but unreserved characters escaped.
    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
