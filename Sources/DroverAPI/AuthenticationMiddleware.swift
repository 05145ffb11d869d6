import DroverDatabase
import Hummingbird

/// Resolves the caller's workspace from the key the SDK sends (`Authorization: Bearer`, or
/// `X-Api-Key`), and checks the beta header the SDK adds to every Managed Agents call.
///
/// With no active key in the database the server is in single-user local mode (it listens on
/// loopback only): every caller is in the `default` workspace.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    static let betaHeader = "managed-agents-2026-04-01"
    static let localWorkspace = "default"

    let store: ControlPlaneStore
    let localWorkspaceID: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/v1/"), path != "/v1/openapi.json" else { return try await next(request, context) }
        var context = context
        if let key = Self.key(request), key.hasPrefix(ControlPlaneStore.environmentKeyPrefix) {
            // Whatever the mode: an environment key is never more than its scope.
            guard let grant = try await store.environmentKey(secret: key) else { throw APIError.unauthorized }
            context.workspace = grant.workspace
            context.environmentGrant = grant.environmentID
            try await EnvironmentKeyScope(store: store).check(request, key: grant)
        } else {
            let caller = CallerWorkspace(store: store, localWorkspaceID: localWorkspaceID)
            guard let resolved = try await caller.resolve(key: Self.key(request), authority: request.head.authority) else {
                throw APIError.unauthorized
            }
            context.workspace = resolved.workspace
        }
        if let asked = request.headers[.init("anthropic-workspace-id")!], !asked.isEmpty, asked != context.workspace {
            throw APIError(
                .forbidden, "permission_error",
                "anthropic-workspace-id: this key belongs to another workspace. Fix: omit the header or send the key's own workspace id")
        }
        let betas = request.headers[values: .init("anthropic-beta")!].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        // The SDK's files calls send no beta header of their own (or `files-api-2025-04-14`).
        let isFiles = path == "/v1/files" || path.hasPrefix("/v1/files/")
        guard isFiles || betas.contains(Self.betaHeader) || UnbuiltRoutes.matches(path) else {
            throw APIError.invalid(
                "anthropic-beta", "the header must include \(Self.betaHeader)",
                fix: "send `anthropic-beta: \(Self.betaHeader)` (the anthropic SDK does this for client.beta.* calls)")
        }
        return try await next(request, context)
    }

    static func key(_ request: Request) -> String? {
        if let key = request.headers[.init("x-api-key")!], !key.isEmpty { return key }
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : token
        }
        return nil
    }
}
