import Hummingbird

/// Managed Agents endpoints Drover does not serve yet. Each answers 501 in the error shape,
/// never a fake success.
enum UnbuiltRoutes {
    static let prefixes: [(path: String, what: String)] = [
        ("/v1/memory_stores", "memory stores"),
        ("/v1/skills", "skills"),
        ("/v1/dreams", "dreams"),
        ("/v1/tunnels", "tunnels"),
        ("/v1/user_profiles", "user profiles"),
        ("/v1/sessions/:session_id/threads", "session threads"),
    ]

    static func add(_ router: Router<APIRequestContext>) {
        for (path, what) in prefixes {
            for pattern in [path, path + "/**"] {
                for method in [HTTPRequest.Method.get, .post, .delete] {
                    router.on(RouterPath(pattern), method: method) { _, _ -> Response in throw APIError.notBuilt(what) }
                }
            }
        }
    }
}
