import Crypto
import DroverConsole
import DroverDatabase
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Who may use the console, and from where.
///
/// - With API keys configured, a key entered once at `/console/login` is kept in an HTTP-only,
///   `SameSite=Strict` cookie scoped to `/console`, and resolves the workspace as the API's
///   `X-Api-Key` does: the console shows that workspace only.
/// - In local mode (no keys; the server listens on loopback only) it needs no key, but answers
///   only requests addressed to a loopback host name, so that a web page whose name re-resolves
///   to 127.0.0.1 (DNS rebinding) cannot drive it.
/// - A POST must come from the console's own pages: it carries the page's CSRF token, derived
///   from the key (or, in local mode, from a secret of this process), and when the browser says
///   where it came from (`Origin`, `Sec-Fetch-Site`), that must be here.
struct ConsoleAccess: RouterMiddleware {
    typealias Context = APIRequestContext
    static let cookieName = "drover_console"
    static let prefix = "/console"

    let store: ControlPlaneStore
    let localWorkspaceID: String
    /// 32 random bytes of this process.
    let localSecret: Data

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path == Self.prefix || path.hasPrefix(Self.prefix + "/") else { return try await next(request, context) }
        var context = context
        var response: Response
        do {
            if let answer = try await admit(request, &context) {
                response = answer
            } else {
                response = try await next(request, context)
            }
        } catch let error as APIError {
            response = ConsoleResponse.page(
                ConsolePages.html(MessagePage(frame: frame(context, title: "Error"), heading: Self.heading(error.status), message: error.message)),
                status: error.status)
        } catch let error as HTTPError where error.status == .notFound {
            response = ConsoleResponse.page(
                ConsolePages.html(
                    MessagePage(
                        frame: frame(context, title: "Not found"), heading: "Not found",
                        message: "\(request.uri.path) is not a console page.")), status: .notFound)
        }
        ConsoleResponse.secure(&response.headers)
        return response
    }

    /// Sets the caller's workspace, or answers for the page (a redirect to sign in, a refusal).
    private func admit(_ request: Request, _ context: inout Context) async throws -> Response? {
        let path = request.uri.path
        let isPublic = path == "/console/login" || path.hasPrefix("/console/assets/")
        let caller = CallerWorkspace(store: store, localWorkspaceID: localWorkspaceID)
        if let resolved = try await caller.resolve(key: request.cookies[Self.cookieName]?.value, authority: request.head.authority) {
            context.workspace = resolved.workspace
            context.consoleKey = resolved.key
        } else if !isPublic {
            if request.method == .get || request.method == .head {
                return ConsoleResponse.redirect("/console/login?next=" + Self.percentEncoded(request.uri.description))
            }
            throw APIError(.unauthorized, "authentication_error", "sign in first. Fix: open /console/login and enter an API key")
        }
        if request.method == .post {
            try Self.checkSameOrigin(request)
            context.consoleForm = try await ConsoleForm.read(request, context: context)
            if path != "/console/login" {
                guard let token = context.consoleForm["csrf"], Self.constantTimeEqual(token, csrfToken(context)) else {
                    throw APIError(
                        .forbidden, "permission_error",
                        "csrf: this form did not come from a current console page. Fix: reload the page and try again")
                }
            }
        }
        return nil
    }

    /// The CSRF token of the pages this caller sees: tied to the key, so it holds across API
    /// processes; in local mode tied to this process, so a restart asks for a reload.
    func csrfToken(_ context: Context) -> String {
        let mac: HashedAuthenticationCode<SHA256>
        if let key = context.consoleKey {
            mac = HMAC<SHA256>.authenticationCode(for: Data("drover console csrf".utf8), using: SymmetricKey(data: SHA256.hash(data: Data(key.utf8))))
        } else {
            mac = HMAC<SHA256>.authenticationCode(for: Data("drover console csrf".utf8), using: SymmetricKey(data: localSecret))
        }
        return Data(mac).base64EncodedString().replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "+", with: "-")
    }

    func frame(_ context: Context, title: String, section: String = "", notice: String? = nil) -> ConsoleFrame {
        ConsoleFrame(
            title: title, section: section, csrf: csrfToken(context), workspace: context.workspace, signedIn: context.consoleKey != nil,
            notice: notice)
    }

    /// A browser says where a request came from; a form another site posts here is refused
    /// before its token is even read.
    static func checkSameOrigin(_ request: Request) throws {
        if let site = request.headers[.init("sec-fetch-site")!], !["same-origin", "none"].contains(site) {
            throw APIError(
                .forbidden, "permission_error",
                "this request came from another site (Sec-Fetch-Site: \(site)); the console takes forms from its own pages only")
        }
        if let origin = request.headers[.origin], origin != "null" {
            let parts = URLComponents(string: origin)
            let host = parts?.host.map { host in parts?.port.map { "\(host):\($0)" } ?? host }
            guard let host, let authority = request.head.authority, host.lowercased() == authority.lowercased() else {
                throw APIError(
                    .forbidden, "permission_error", "this request came from \(origin.prefix(100)); the console takes forms from its own pages only")
            }
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~/"))) ?? "/console"
    }

    static func heading(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400, 422: return "That did not work"
        case 401: return "Sign in first"
        case 403: return "Not allowed"
        case 404: return "Not found"
        default: return "Something went wrong"
        }
    }
}

/// A console POST's `application/x-www-form-urlencoded` fields; none for any other body, which
/// then lacks its CSRF token too.
enum ConsoleForm {
    static let maximumBytes = 64 << 10

    static func read(_ request: Request, context: APIRequestContext) async throws -> [String: String] {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/x-www-form-urlencoded") else { return [:] }
        let body = try await request.body.collect(upTo: maximumBytes)
        var components = URLComponents()
        components.percentEncodedQuery = String(buffer: body).replacingOccurrences(of: "+", with: "%20")
        var fields: [String: String] = [:]
        for item in components.queryItems ?? [] where fields[item.name] == nil {
            fields[item.name] = item.value ?? ""
        }
        return fields
    }
}

/// How the console answers: HTML with strict headers, and redirects after actions.
enum ConsoleResponse {
    static func page(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// 303: the browser follows with a GET, so a reload does not post again.
    static func redirect(_ location: String, notice: String? = nil) -> Response {
        var target = location
        if let notice {
            target += (location.contains("?") ? "&" : "?") + "notice=" + (notice.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        }
        var headers = HTTPFields()
        headers[.location] = target
        return Response(status: .seeOther, headers: headers)
    }

    /// No script but the console's own, no framing, no caching of pages that show a workspace.
    static func secure(_ headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[.init("x-content-type-options")!] = "nosniff"
        headers[.init("x-frame-options")!] = "DENY"
        headers[.init("referrer-policy")!] = "no-referrer"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
    }
}
